"""One module per training stage; each assembles its trainer from tunelab.train.builders."""
