"""Every use of a private attribute of transformers, torch or datasets, one small function each.

Libraries rename private attributes without notice. Keeping each access here, with the library
version it was written for, means a release that changes one breaks ``tests/compat`` loudly instead
of a training run quietly. Import the submodule you need (``tunelab.compat.transformers``,
``tunelab.compat.torch``, ``tunelab.compat.datasets``); this package imports none of them, so a
light module can use ``compat.datasets`` without importing torch.
"""

from __future__ import annotations

__all__: list[str] = []
