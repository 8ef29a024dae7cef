"""Training throughput with 1 process vs 2 processes (DDP over gloo) at the same global batch.

    python benchmarks/ddp_throughput.py            # tiny:llama, 200 steps, 3 repeats
    python benchmarks/ddp_throughput.py --quick    # 60 steps, 1 repeat

Every variant is the real command line, ``tunelab train examples/sft_lora_tiny.yaml ...``, at the
global batch 8 (per device x accumulation x processes):

  1 proc x 1 thread     batch 8,                    OMP_NUM_THREADS=1
  1 proc x 2 threads    batch 8,                    OMP_NUM_THREADS=2 (the same cores as 2 processes)
  2 procs x 1 thread    batch 4 per process, DDP,   ``--nproc-per-node 2`` (1 thread each)

The figure is metrics.json's tokens_per_second: non-padding tokens of all ranks over the wall time
of the training steps (loading, data preparation, evaluation and saving excluded), so DDP's
gradient all-reduce is inside it. Variants alternate order between repeats. The table and the
command go to docs/benchmarks.md; on a shared machine the load average is recorded with them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "benchmarks.md"
EXAMPLE = ROOT / "examples" / "sft_lora_tiny.yaml"
BEGIN, END = "<!-- ddp_throughput: generated -->", "<!-- /ddp_throughput -->"
# name -> (processes, threads per process, per-device batch)
VARIANTS = {
    "1 proc x 1 thread": (1, 1, 8),
    "1 proc x 2 threads": (1, 2, 8),
    "2 procs x 1 thread (DDP, gloo)": (2, 1, 4),
}


def run_variant(nproc: int, threads: int, batch: int, steps: int, out: Path) -> float:
    """tokens/s of one run (metrics.json), after checking that it finished."""
    command = [sys.executable, "-m", "tunelab", "train", str(EXAMPLE), f"output_dir={out}"]
    command += [
        f"max_steps={steps}",
        f"per_device_train_batch_size={batch}",
        "eval_strategy=no",
        "val_size=0",
    ]
    command += [
        "save_steps=100000",
        "logging_steps=20",
        "disable_tqdm=true",
        "plot_loss=false",
        "compute_type=fp32",
    ]
    if nproc > 1:
        command += ["--nproc-per-node", str(nproc)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    proc = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{proc.stderr[-3000:]}")
    metrics = json.loads((out / "metrics.json").read_text())
    return float(metrics["tokens_per_second"])


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").is_file() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="60 steps, 1 repeat")
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    args = parser.parse_args()
    steps, repeats = (60, 1) if args.quick else (args.steps, args.repeats)

    names = list(VARIANTS)
    results: dict[str, list[float]] = {name: [] for name in names}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(repeats):
            for name in names if repeat % 2 == 0 else reversed(names):
                nproc, threads, batch = VARIANTS[name]
                out = Path(tmp) / f"{name.split()[0]}-{threads}-{repeat}"
                results[name].append(run_variant(nproc, threads, batch, steps, out))
                print(f"{name}: {results[name][-1]:,.0f} tokens/s", file=sys.stderr)
    base = statistics.median(results[names[0]])
    rows = [
        f"| {name} | {statistics.median(v):,.0f} | {' '.join(f'{x:,.0f}' for x in v)} | "
        f"{statistics.median(v) / base:.2f} |"
        for name, v in results.items()
    ]
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    command = "python benchmarks/ddp_throughput.py" + (" --quick" if args.quick else "")
    import torch

    section = "\n".join(
        [
            BEGIN,
            "### 1 vs 2 processes (DDP over gloo), tiny:llama, global batch 8",
            "",
            f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
            f"- command: `{command}`",
            f"- machine: {cpu_model()}, {os.cpu_count()} cores; load average (1/5/15 min) at the end {load}",
            f"- software: Python {platform.python_version()}, torch {torch.__version__}",
            f"- schedule: {steps} steps per run, {repeats} repeat(s), order alternating; examples/sft_lora_tiny.yaml, fp32",
            "",
            "| variant | tokens/s (median) | each repeat | vs 1 proc x 1 thread |",
            "| --- | ---: | ---: | ---: |",
            *rows,
            END,
        ]
    )
    print(section)
    if not args.no_write:
        text = DOCS.read_text(encoding="utf-8")
        if BEGIN in text:
            text = text[: text.index(BEGIN)] + section + text[text.index(END) + len(END) :]
        else:
            text = text.rstrip("\n") + "\n\n" + section + "\n"
        DOCS.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
