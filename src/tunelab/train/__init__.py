"""Training: stage dispatch, trainer builders, run-directory callbacks."""

from __future__ import annotations

from tunelab.train.run import STAGES, train
from tunelab.train.runner import RunResult

__all__ = ["STAGES", "RunResult", "train"]
