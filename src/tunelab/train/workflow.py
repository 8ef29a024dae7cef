"""LLaMA-Factory's workflow keys in a train config: ``do_train``, ``do_eval``, ``do_predict``.

``do_eval`` / ``do_predict`` (with ``predict_with_generate``) measure the trained run on its
evaluation split exactly as ``tunelab eval --run <run> [--predict]`` does, writing metrics.json and
generated_predictions.jsonl into ``<run>/eval``. ``do_train: false`` skips training and only
evaluates / predicts the configured model (LLaMA-Factory's predict configs), into ``output_dir``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tunelab.config import RunConfig
from tunelab.runs.rundir import RunDir
from tunelab.train.runner import RunResult

__all__ = ["EVAL_DIR", "evaluate_after_training", "evaluate_without_training"]

EVAL_DIR = "eval"  # <run>/eval: what do_eval / do_predict measured after training


def evaluate_after_training(config: RunConfig, result: RunResult, console: Any = None) -> RunResult:
    """Run do_eval / do_predict on the finished run; its metrics are added with an ``after_`` prefix."""
    from tunelab.evaluate.run import evaluate

    if result.status not in ("finished", "early_stopped"):
        return result
    run = RunDir(result.run_dir)
    out = run.path / EVAL_DIR
    measured = evaluate(run=run.path, output_dir=out, console=console)
    run.write_event(
        "after_training",
        f"do_eval={config.training.do_eval} do_predict={config.training.do_predict}: results in {out}",
        message_zh=f"do_eval={config.training.do_eval} do_predict={config.training.do_predict}：结果在 {out}",
        files=[str(p) for p in measured.files],
    )
    numbers = {f"after_{k}": v for k, v in measured.metrics.items() if isinstance(v, (int, float))}
    return RunResult(result.run_dir, result.status, {**result.metrics, **numbers}, result.checkpoint)


def evaluate_without_training(config: RunConfig, console: Any = None) -> RunResult:
    """do_train: false: evaluate / predict the configured model into output_dir (runs/eval-<time>)."""
    from tunelab.evaluate.run import evaluate_config

    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(config.output.output_dir or Path("runs") / f"{config.finetuning.stage}-eval-{stamp}")
    measured = evaluate_config(config, out, label=config.model.model_name_or_path, console=console)
    return RunResult(out, "finished", measured.metrics)
