"""benchmarks/gpu_throughput.py runs end to end on a CPU with --tiny, so it works the first time it meets a GPU."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_throughput.py"


def _load():
    spec = importlib.util.spec_from_file_location("gpu_throughput", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_throughput"] = module
    spec.loader.exec_module(module)
    return module


def test_tiny_run_measures_every_case_it_can_and_says_why_not_the_others() -> None:
    rows = _load().main(["--tiny", "--steps", "2", "--warmup", "1", "--no-docs"])
    by_case = {(r[1], r[2]): r for r in rows}
    for method in ("lora", "full"):
        for variant in ("plain", "tunelab"):
            row = by_case[(method, variant)]
            assert float(row[4].replace(",", "")) > 0  # tokens/s
            assert float(row[7].replace(",", "")) > 0  # measured peak memory
            assert float(row[8].replace(",", "")) > 0  # tunelab estimate's figure
    if not torch.cuda.is_available():
        assert all("skipped: needs a CUDA GPU" in by_case[("qlora", v)][4] for v in ("plain", "tunelab"))
        assert "liger-kernel" in by_case[("lora", "tunelab+liger")][4]
