"""Data quality: check, clean, select and augment training data before any GPU hour is spent.

- :func:`check_data` finds malformed/empty records, exact and near duplicates, conflicting
  answers, eval/test leaks into the training split, lengths beyond cutoff_len, the script mix.
- :func:`clean_data` writes cleaned copies in the input's own format, with a removed.jsonl.
"""

from __future__ import annotations

from tunelab.quality.check import DEFAULT_FAIL_ON, KINDS, QualityReport, check_data

__all__ = ["DEFAULT_FAIL_ON", "KINDS", "QualityReport", "check_data"]
