"""The tabs of the web UI, one module each."""
