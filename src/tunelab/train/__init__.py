"""Training: stage dispatch, trainer builders, run-directory callbacks."""

from __future__ import annotations

from tunelab._callable import make_module_callable
from tunelab.train.run import STAGES, train
from tunelab.train.runner import RunResult

__all__ = ["STAGES", "RunResult", "train"]

# `from tunelab import train; train(config)`: the package is callable as its main function
make_module_callable(__name__, "tunelab.train.run", "train")
