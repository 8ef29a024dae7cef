"""Export a trained model as a stand-alone one: merge, shard, quantize, verify.

    from tunelab import export
    result = export(run="runs/sft-lora-tiny")          # = tunelab.export.run.export_model(...)
    result.export_dir, result.verification.max_abs_diff

The package is callable as :func:`tunelab.export.run.export_model` (see tunelab/_callable.py for why).
"""

from __future__ import annotations

from tunelab._callable import make_module_callable
from tunelab.export.run import ExportResult, export_model, resolve_export_config

__all__ = ["ExportResult", "export_model", "resolve_export_config"]

make_module_callable(__name__, "tunelab.export.run", "export_model")
