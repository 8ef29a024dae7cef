"""Private attributes of 🤗 datasets objects that tunelab relies on (written for datasets 5.2).

No import of datasets (or torch) here: ``data/`` uses it and must stay light at import time.
"""

from __future__ import annotations

from typing import Any

__all__ = ["dataset_fingerprint"]


def dataset_fingerprint(dataset: Any) -> str:
    """The content hash datasets 5.2 keeps for caching (``Dataset._fingerprint``); "" if absent.

    It changes with every transform, so it is a cheap cache key for "these exact records"; there
    is no public accessor.
    """
    return str(getattr(dataset, "_fingerprint", "") or "")
