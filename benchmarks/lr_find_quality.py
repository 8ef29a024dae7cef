"""Does `tunelab lr-find` suggest a learning rate close to the best one a full sweep finds?

For each task: a sweep of ordinary short training runs (`tunelab.train.train`, the task's schedule,
final eval loss on a 10% validation split) over half-decade learning rates, then the LR range test on
the same config. The sweep's best learning rate is the grid point with the lowest eval loss, refined
by a parabola through it and its two neighbours in log(lr) (the grid is 3.16x wide, as wide as the
quality target). Reported: the suggestion, each reading (steepest descent, minimum/10), and their
ratio to the sweep's best. Target: within 3x.

    python benchmarks/lr_find_quality.py            # both tasks (tiny full FT, SmolLM2 LoRA)
    python benchmarks/lr_find_quality.py --quick    # the tiny task only
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _tune_docs import machine_lines, markdown_table, print_table, update_docs  # noqa: E402

_COMMON = [
    "dataset=instruct_en", "dataset_dir=builtin", "template=chatml", "cutoff_len=256", "val_size=0.1",
    "lr_scheduler_type=cosine", "warmup_ratio=0.1", "compute_type=fp32", "seed=42",
]  # fmt: skip
TASKS: dict[str, dict[str, Any]] = {
    "tiny:llama full FT": {
        "items": ["model_name_or_path=tiny:llama", "finetuning_type=full", "per_device_train_batch_size=8",
                  "num_train_epochs=2", *_COMMON],
        "grid": [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1],
    },
    "tiny:llama LoRA": {
        "items": ["model_name_or_path=tiny:llama", "finetuning_type=lora", "lora_rank=8",
                  "per_device_train_batch_size=8", "num_train_epochs=2", *_COMMON],
        "grid": [3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1],
    },
    "tiny:qwen2 full FT (dialogue data)": {
        "items": ["model_name_or_path=tiny:qwen2", "finetuning_type=full", "per_device_train_batch_size=8",
                  "num_train_epochs=3", *_COMMON, "dataset=identity_en,identity_zh,chat_sharegpt"],
        "grid": [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1],
    },
    "SmolLM2-135M LoRA": {
        "items": ["model_name_or_path=smollm2", "finetuning_type=lora", "lora_rank=8",
                  "per_device_train_batch_size=4", "max_steps=24", *_COMMON],
        "grid": [1e-4, 3e-4, 1e-3, 3e-3, 1e-2],
        "lr_find_steps": 60,
    },
}  # fmt: skip


def sweep_run(items: list[str], lr: float, out: Path) -> float:
    """Final eval loss of one ordinary run at learning rate ``lr`` (inf when it failed to produce one)."""
    from tunelab.config import load_config
    from tunelab.train import train

    config = load_config(
        None,
        [*items, f"learning_rate={lr}", f"output_dir={out}", "health.enabled=false", "plot_loss=false",
         "disable_tqdm=true", "save_steps=100000", "logging_steps=5", "overwrite_output_dir=true"],
    )  # fmt: skip
    result = train(config)
    loss = result.metrics.get("eval_loss")
    return float(loss) if isinstance(loss, (int, float)) and math.isfinite(loss) else math.inf


def refine_best(grid: list[float], losses: list[float]) -> float:
    """The minimum of a parabola through the best grid point and its neighbours in log10(lr)."""
    best = min(range(len(grid)), key=losses.__getitem__)
    if best in (0, len(grid) - 1) or not all(math.isfinite(losses[i]) for i in (best - 1, best, best + 1)):
        return grid[best]
    x = [math.log10(grid[i]) for i in (best - 1, best, best + 1)]
    y = [losses[i] for i in (best - 1, best, best + 1)]
    denom = (x[0] - x[1]) * (x[0] - x[2]) * (x[1] - x[2])
    a = (x[2] * (y[1] - y[0]) + x[1] * (y[0] - y[2]) + x[0] * (y[2] - y[1])) / denom
    b = (x[2] ** 2 * (y[0] - y[1]) + x[1] ** 2 * (y[2] - y[0]) + x[0] ** 2 * (y[1] - y[2])) / denom
    if a <= 0:
        return grid[best]
    vertex = -b / (2 * a)
    return 10 ** min(max(vertex, x[0]), x[2])


def run_task(name: str, spec: dict[str, Any], scratch: Path) -> dict[str, Any]:
    from tunelab.config import load_config
    from tunelab.tune.lr_find import lr_find

    losses = []
    for lr in spec["grid"]:
        start = time.time()
        losses.append(sweep_run(spec["items"], lr, scratch / f"{name.split()[0]}-{lr:g}"))
        print(
            f"  {name}: lr {lr:.0e} -> eval loss {losses[-1]:.4f} ({time.time() - start:.0f} s)", flush=True
        )
    best_grid = spec["grid"][min(range(len(losses)), key=losses.__getitem__)]
    best = refine_best(spec["grid"], losses)
    start = time.time()
    found = lr_find(
        load_config(None, spec["items"]),
        num_steps=spec.get("lr_find_steps", 100),
        output_dir=scratch / f"lrfind-{name.split()[0]}",
    )
    print(f"  {name}: lr-find {found.suggestion:.2e} ({time.time() - start:.0f} s)", flush=True)
    return {"grid": spec["grid"], "losses": losses, "best_grid": best_grid, "best": best, "found": found}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="the tiny tasks only")
    parser.add_argument("--tasks", help="comma-separated task names (default: all)")
    parser.add_argument("--no-docs", action="store_true", help="leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)
    names = [n for n in TASKS if not (args.quick and "tiny" not in n)]
    if args.tasks:
        names = [n for n in names if n in args.tasks.split(",")]
    from tunelab.quiet import quiet_libraries

    quiet_libraries()
    rows, sweeps = [], []
    with tempfile.TemporaryDirectory(prefix="tunelab-lrq-") as tmp:
        for name in names:
            res = run_task(name, TASKS[name], Path(tmp))
            found = res["found"]
            ratio = max(found.suggestion / res["best"], res["best"] / found.suggestion)
            rows.append(
                [
                    name, f"{res['best_grid']:.0e}", f"{res['best']:.2e}", f"{found.suggestion:.2e}", f"{ratio:.2f}x",
                    "yes" if ratio <= 3 else "no", f"{found.suggestions['steepest']:.2e}",
                    f"{found.suggestions['minimum']:.2e}", f"{found.suggestions['min_div_10']:.2e}",
                ]
            )  # fmt: skip
            sweeps.append(
                f"- {name}: "
                + ", ".join(f"{lr:.0e} -> {loss:.3f}" for lr, loss in zip(res["grid"], res["losses"]))
            )
    columns = [
        "task", "sweep best (grid)", "sweep best (refined)", "lr-find suggestion", "ratio", "within 3x",
        "steepest descent", "minimum", "minimum/10",
    ]  # fmt: skip
    print_table("lr-find suggestion vs sweep-best learning rate", columns, rows)
    if not args.no_docs:
        command = "python benchmarks/lr_find_quality.py" + (" --quick" if args.quick else "")
        if args.tasks:
            command += f" --tasks '{args.tasks}'"
        section = "\n".join(
            [
                "### tunelab lr-find: suggestion vs the best learning rate of a sweep",
                "",
                f"- command: `{command}`",
                *machine_lines(),
                "- sweep: ordinary `tunelab train` runs (instruct_en; identity + chat_sharegpt for tiny:qwen2; cutoff 256, cosine with 10% warm-up, fp32, "
                "seed 42, health monitor off), final eval loss on a 10% split; best = lowest eval loss, refined "
                "by a parabola in log(lr) through its grid neighbours",
                "- lr-find: 100 steps (SmolLM2: 60) from 1e-7 to 1 on the same config; suggestion = geometric mean "
                "of the steepest-descent and minimum learning rates of the centred-smoothed curve",
                "- SmolLM2 sweep runs are 24 steps (about 0.7 epoch) to keep the benchmark near an hour on 2 cores",
                "",
                *markdown_table(columns, rows),
                "",
                "eval loss by learning rate:",
                "",
                *sweeps,
                "",
            ]
        )
        update_docs("lr_find_quality", section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
