"""How close `tunelab estimate` comes to the measured peak memory of real training steps.

Each case runs in a fresh process: load the data, note the resident size (RSS), load the model and
optimizer, run two training steps on the worst-case batch (the first creates the optimizer state),
and record

- measured tensor peak: weights + buffers before the steps plus the peak of live tensor memory during
  the second step, counted by tunelab.tune.memtrack (what CUDA's max_memory_allocated reports on a GPU);
- RSS growth: the process's peak resident size (VmHWM, reset before the model loads) minus the
  resident size before it; it adds what no tensor count sees (allocator caches, oneDNN workspaces,
  Python objects), so it is shown for context, not as the target;
- estimate: tunelab.tune.memory's peak for the same model, settings and sequence length.

    python benchmarks/estimate_accuracy.py                # tiny model cases + SmolLM2 cases
    python benchmarks/estimate_accuracy.py --quick        # tiny model only (about a minute)
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _tune_docs import machine_lines, markdown_table, print_table, update_docs  # noqa: E402

# (model, micro-batch, sequence length, overrides)
CASES: list[tuple[str, int, int, list[str]]] = [
    ("tiny:llama", 8, 256, ["finetuning_type=full"]),
    ("tiny:llama", 8, 256, ["finetuning_type=lora"]),
    ("tiny:llama", 8, 256, ["finetuning_type=lora", "gradient_checkpointing=true"]),
    ("tiny:llama", 8, 256, ["finetuning_type=freeze"]),
    ("tiny:llama", 8, 256, ["finetuning_type=lora", "flash_attn=disabled"]),
    ("tiny:llama", 8, 256, ["finetuning_type=full", "optim=adafactor"]),
    ("tiny:llama", 8, 256, ["finetuning_type=full", "compute_type=bf16"]),
    ("tiny:llama", 8, 256, ["finetuning_type=lora", "compute_type=bf16"]),
    ("smollm2", 4, 256, ["finetuning_type=lora"]),
    ("smollm2", 4, 256, ["finetuning_type=lora", "gradient_checkpointing=true"]),
    ("smollm2", 2, 512, ["finetuning_type=full"]),
    ("smollm2", 8, 128, ["finetuning_type=freeze"]),
]


def _vm(field: str) -> int:
    match = re.search(rf"{field}:\s+(\d+) kB", Path("/proc/self/status").read_text())
    return int(match.group(1)) * 1024 if match else 0


def child(case: dict[str, Any]) -> dict[str, Any]:
    """Measure one case in this (fresh) process."""
    import gc

    import torch

    from tunelab.config import load_config
    from tunelab.data.pipeline import prepare_data
    from tunelab.model import load_tokenizer
    from tunelab.tune.estimate import setup_from_config
    from tunelab.tune.memory import estimate_memory
    from tunelab.tune.probe import TrainingProbe
    from tunelab.tune.shape import read_model_shape

    items = [
        f"model_name_or_path={case['model']}", "dataset=instruct_en", "dataset_dir=builtin", "template=chatml",
        "cutoff_len=1024", "compute_type=fp32", f"per_device_train_batch_size={case['batch']}", *case["overrides"],
    ]  # fmt: skip
    config = load_config(None, items)
    tokenizer = load_tokenizer(config.model)
    prepared = prepare_data(config, tokenizer)
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    rss_before = _vm("VmRSS")
    probe = TrainingProbe(config, prepared=prepared, tokenizer=tokenizer)
    reading = probe.measure_train_peak(probe.worst_case_batch(case["batch"], seq_len=case["seq"]))
    rss_growth = _vm("VmHWM") - rss_before
    compute_bytes = 4 if probe.compute_dtype == torch.float32 else 2
    setup = setup_from_config(
        config, compute_bytes=compute_bytes, device=probe.device.type, seq_len=case["seq"]
    )
    estimate = estimate_memory(read_model_shape(case["model"]), setup)
    return {
        "measured": reading.total_bytes,
        "rss_growth": rss_growth,
        "estimate": estimate.peak,
        "activations": estimate.activations,
        "threads": torch.get_num_threads(),
    }


def run_case(model: str, batch: int, seq: int, overrides: list[str]) -> dict[str, Any]:
    payload = json.dumps({"model": model, "batch": batch, "seq": seq, "overrides": overrides})
    out = subprocess.run(
        [sys.executable, __file__, "--child", payload], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"case {payload} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny model cases only")
    parser.add_argument("--no-docs", action="store_true", help="leave docs/benchmarks.md alone")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    cases = [c for c in CASES if not (args.quick and c[0] != "tiny:llama")]
    rows, errors = [], []
    for model, batch, seq, overrides in cases:
        result = run_case(model, batch, seq, overrides)
        error = 100 * (result["estimate"] / result["measured"] - 1)
        errors.append(abs(error))
        mib = 2**20
        rows.append(
            [
                model, " ".join(o.replace("finetuning_type=", "") for o in overrides), f"{batch} x {seq}",
                f"{result['estimate'] / mib:,.1f}", f"{result['measured'] / mib:,.1f}", f"{error:+.1f}%",
                f"{result['rss_growth'] / mib:,.1f}", f"{100 * (result['estimate'] / result['rss_growth'] - 1):+.1f}%",
            ]
        )  # fmt: skip
        print(" | ".join(rows[-1]), flush=True)
    columns = [
        "model", "settings", "batch x tokens", "estimate MiB", "measured tensor peak MiB", "error",
        "RSS growth MiB", "estimate vs RSS",
    ]  # fmt: skip
    print_table("estimate vs measured peak memory (CPU)", columns, rows)
    print(f"\nlargest |error| vs the tensor peak: {max(errors):.1f}% (target: 15%)")
    if not args.no_docs:
        command = "python benchmarks/estimate_accuracy.py" + (" --quick" if args.quick else "")
        section = "\n".join(
            [
                "### tunelab estimate: estimated vs measured peak memory",
                "",
                f"- command: `{command}`",
                *machine_lines(),
                "- each case in a fresh process, on CPU, fp32 unless the settings say bf16 (autocast); the worst-case batch (every row as long as the "
                "sequence length, the last one a token shorter so the batch pads like real ones); the second of "
                "two AdamW steps is measured",
                "- measured tensor peak: weights + live tensors at the worst moment of the step, counted by "
                "`tunelab.tune.memtrack` (the CPU counterpart of CUDA's `max_memory_allocated`); this is the "
                "accuracy target (15%)",
                "- RSS growth: peak resident size minus the resident size before the model loaded; it also holds "
                "allocator caches and library workspaces that no tensor count sees, so it runs above both",
                f"- largest |error| vs the tensor peak: **{max(errors):.1f}%**",
                "",
                *markdown_table(columns, rows),
                "",
            ]
        )
        update_docs("estimate_accuracy", section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
