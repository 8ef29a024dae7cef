"""Run a built trainer to the end (or to a graceful stop) and write the results into the run directory."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import Trainer

from tunelab.errors import ResourceError
from tunelab.model.pissa import save_pissa_as_lora
from tunelab.runs.model_card import write_model_card
from tunelab.runs.plots import plot_run
from tunelab.runs.rundir import RunDir
from tunelab.runs.train_loss import whole_run_train_loss
from tunelab.train.callbacks import GracefulStopCallback, RunLogCallback

__all__ = ["RunResult", "run_trainer"]


@dataclass
class RunResult:
    """What a finished (or gracefully stopped) run produced."""

    run_dir: Path
    # "finished"; "early_stopped" (the metric stopped improving: a normal end); "stopped" (the
    # health monitor ended a run going wrong); "pruned" (`tunelab tune` stopped an unpromising trial);
    # "interrupted" (Ctrl-C / SIGTERM, resumable)
    status: str
    metrics: dict[str, Any] = field(default_factory=dict)
    checkpoint: Path | None = None
    stop_reason: str | None = None


def _stopped_by(trainer: Trainer) -> tuple[str, str, str] | None:
    """(status, callback kind, message) when a health or early-stopping callback ended the run."""
    for callback in trainer.callback_handler.callbacks:
        reason = getattr(callback, "stop_reason", None)
        if reason:
            kind = getattr(callback, "kind", "")
            # "pruned": `tunelab tune` ended an unpromising trial (tune/pruning.py)
            status = {"health": "stopped", "pruned": "pruned"}.get(kind, "early_stopped")
            return status, kind, reason
    return None


def _is_oom(exc: BaseException) -> bool:
    text = str(exc).lower()
    return (
        isinstance(exc, torch.OutOfMemoryError) or "out of memory" in text or "can't allocate memory" in text
    )


def _final_eval(trainer: Trainer) -> dict[str, Any]:
    """Eval metrics at the last step: reuse the scheduled evaluation when it ran there."""
    history = trainer.state.log_history
    # an evaluation row: eval_loss, or (ppo, whose evaluation has no loss) any eval_ metric
    last = next((row for row in reversed(history) if any(k.startswith("eval_") for k in row)), None)
    if last is not None and last.get("step") == trainer.state.global_step:
        return {k: v for k, v in last.items() if k.startswith("eval_")}
    return trainer.evaluate()


def _whole_run_loss(session_loss: float, trainer: Trainer, resume_from: Path | None) -> float:
    """``session_loss`` (the mean over this train() call) extended to every step since step 0."""
    state_file = resume_from / "trainer_state.json" if resume_from else None
    if state_file is None or not state_file.is_file():
        return session_loss
    resumed = json.loads(state_file.read_text(encoding="utf-8"))
    resumed_step = int(resumed.get("global_step", 0))
    return whole_run_train_loss(
        session_loss, trainer.state.global_step - resumed_step, resumed_step, resumed.get("log_history", [])
    )


def run_trainer(
    trainer: Trainer,
    run: RunDir,
    stop: GracefulStopCallback,
    *,
    resume_from: Path | None,
    extra_metrics: dict[str, Any],
    card_info: dict[str, Any],
    perplexity: bool = True,
) -> RunResult:
    """Train, then save the final weights, metrics, plots and model card.

    A graceful stop (Ctrl-C / SIGTERM) leaves a checkpoint and returns status "interrupted";
    out-of-memory becomes a ResourceError with the usual fixes, the last checkpoint untouched.
    ``perplexity=False``: the stage's eval_loss is not a token NLL (rm, dpo, ...), so no eval_perplexity.
    """
    try:
        output = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    except RuntimeError as exc:
        if isinstance(exc, torch.distributed.DistError):
            raise ResourceError(
                f"lost contact with another training process ({exc.__class__.__name__}: "
                f"{str(exc).splitlines()[0][:300]}): a rank of this run died, or its machine went away, or "
                f"it stopped answering for ddp_timeout={trainer.args.ddp_timeout} s",
                "the launcher's log names the rank that ended first; fix it and continue with "
                "resume_from_checkpoint=auto (with the same or another number of processes)",
            ) from None
        if _is_oom(exc):
            raise ResourceError(
                f"out of memory while training ({exc.__class__.__name__})",
                "lower per_device_train_batch_size (raise gradient_accumulation_steps to keep the effective "
                "batch), lower cutoff_len, or set gradient_checkpointing=true; `tunelab find-batch` measures it",
            ) from None
        raise
    finally:
        stop.restore()

    if stop.requested is not None:
        checkpoint = run.latest_checkpoint()
        run.write_event(
            "interrupted",
            f"{stop.requested} received: saved {checkpoint.name if checkpoint else 'no checkpoint'} and stopped",
            step=trainer.state.global_step,
            checkpoint=str(checkpoint) if checkpoint else None,
        )
        if run.writer:
            plot_run(run.path)
        return RunResult(run.path, "interrupted", checkpoint=checkpoint)

    metrics: dict[str, Any] = dict(output.metrics)
    if "train_loss" in metrics:  # the whole run's, not only the steps since the resume
        metrics["train_loss"] = _whole_run_loss(float(metrics["train_loss"]), trainer, resume_from)
    metrics.update(extra_metrics)
    metrics["global_step"] = trainer.state.global_step
    status, reason = "finished", None
    if (stopped := _stopped_by(trainer)) is not None:
        status, metrics["stopped_by"], reason = stopped
    metrics["status"] = status
    log_cb = next(cb for cb in trainer.callback_handler.callbacks if isinstance(cb, RunLogCallback))
    if (speed := log_cb.mean_tokens_per_second(trainer.state)) is not None:
        metrics["tokens_per_second"] = speed
    if trainer.eval_dataset is not None:
        eval_metrics = _final_eval(trainer)
        if perplexity and "eval_loss" in eval_metrics:  # language-model stages only
            eval_metrics["eval_perplexity"] = math.exp(min(eval_metrics["eval_loss"], 50.0))
        metrics.update(eval_metrics)
    trainer.save_model(str(run.path))  # (the Trainer saves on the main process only)
    if run.writer:
        # a PiSSA adapter only fits its residual base: save it as a plain LoRA delta (model/pissa.py)
        save_pissa_as_lora(trainer.model, run.path)
        if trainer.processing_class is not None:
            trainer.processing_class.save_pretrained(str(run.path))
        run.write_metrics(metrics)
        plot_run(run.path)
        write_model_card(run.path, card_info, metrics)
    return RunResult(
        run.path, status, metrics=metrics, checkpoint=run.latest_checkpoint(), stop_reason=reason
    )
