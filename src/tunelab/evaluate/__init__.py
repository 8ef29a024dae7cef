"""Evaluation: loss/perplexity, predictions with BLEU/ROUGE, multiple-choice benchmarks, comparisons.

``from tunelab import evaluate; evaluate("runs/x", compare="base")``: the package is callable as
:func:`tunelab.evaluate.run.evaluate` (imported on first call, so this package stays cheap to import).
"""

from __future__ import annotations

from tunelab._callable import make_module_callable

__all__: list[str] = []

make_module_callable(__name__, "tunelab.evaluate.run", "evaluate")
