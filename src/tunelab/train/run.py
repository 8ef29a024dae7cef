"""``train(config)``: the whole run as a short story — directory, config, precision, stage, results."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tunelab import distributed
from tunelab.config import RunConfig, dump_config
from tunelab.config.validate import require_for
from tunelab.errors import ConfigError
from tunelab.runs.resume import resume_point
from tunelab.runs.rundir import RunDir
from tunelab.train.context import RunContext
from tunelab.train.runner import RunResult
from tunelab.train.world import describe_resume_world, describe_world, global_batch

__all__ = ["STAGES", "resolve_output_dir", "resolve_resume", "train"]


def _run_lm(*args: Any) -> RunResult:
    from tunelab.train.stages.lm import run_lm

    return run_lm(*args)


def _run_cls(*args: Any) -> RunResult:
    from tunelab.train.stages.cls import run_cls

    return run_cls(*args)


def _lazy_stage(module: str) -> Callable[..., RunResult]:
    """run_<module> of tunelab.train.stages.<module>, imported on the first call (it imports torch/TRL)."""

    def run(*args: Any) -> RunResult:
        from importlib import import_module

        return getattr(import_module(f"tunelab.train.stages.{module}"), f"run_{module}")(*args)

    return run


# stage name -> function(config, run, ctx, resume_from); a test keeps this in step with the schema.
STAGES: dict[str, Callable[..., RunResult]] = {
    "pt": _run_lm,
    "sft": _run_lm,
    "cls": _run_cls,
    **{stage: _lazy_stage(stage) for stage in ("rm", "dpo", "kto", "ppo", "kd")},
}


def resolve_output_dir(config: RunConfig) -> Path:
    """The run directory: output_dir, or runs/<stage>-<method>-<time> when unset."""
    if config.output.output_dir:
        return Path(config.output.output_dir)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{config.finetuning.stage}-{config.finetuning.finetuning_type}-{stamp}"


def resolve_resume(config: RunConfig, run: RunDir) -> Path | None:
    """The checkpoint to resume from, or None for a fresh run; refuses to overwrite finished work.

    The decision itself lives in :mod:`tunelab.runs.resume`, where the web UI takes it too before
    it launches a job."""
    return resume_point(
        run,
        config.training.resume_from_checkpoint,
        overwrite=config.output.overwrite_output_dir,
        output_dir_given=bool(config.output.output_dir),
    )


def train(config: RunConfig, *, console: Any = None, callbacks: Sequence[Any] = ()) -> RunResult:
    """Train one run described by ``config``; returns where it went and its final metrics.

    ``callbacks``: extra transformers TrainerCallbacks (e.g. `tunelab tune`'s pruning callback); one
    with a ``stop_reason`` attribute that ends the run reports it like the health monitor does.
    """
    from transformers import set_seed

    from tunelab.model.precision import describe_compute_choice, resolve_compute_dtype
    from tunelab.model.resolve import resolve_model_path
    from tunelab.train.boosters import check_boosters
    from tunelab.train.engines import engine_compute_type
    from tunelab.train.workflow import evaluate_after_training, evaluate_without_training

    require_for(config, "train")  # e.g. no dataset: refused before any directory or model
    if not config.training.do_train:  # LLaMA-Factory's predict/eval-only configs
        return evaluate_without_training(config, console)
    # several ranks: join the group first, so that ddp_timeout bounds every wait that follows
    distributed.init_process_group(config.training.ddp_timeout)
    if not distributed.is_writer():
        console = None  # rank 0 speaks for the run
    # one name for every rank (the default name has the time in it)
    run = RunDir(distributed.broadcast_decision(resolve_output_dir(config)))
    resume_from = resolve_resume(config, run)
    distributed.barrier()  # every rank has read the directory before rank 0 changes it
    stage_fn = STAGES.get(config.finetuning.stage)
    if stage_fn is None:
        raise ConfigError(
            f"stage={config.finetuning.stage} is not available yet",
            f"available stages: {', '.join(STAGES)}",
        )
    # decided before anything is written: fp16 without a GPU fails here, leaving no run directory
    compute_type = engine_compute_type(config.compute_type, deepspeed=config.training.deepspeed)
    dtype = resolve_compute_dtype(compute_type)
    check_boosters(config.model)  # liger/unsloth without a GPU or package fail here too
    with distributed.main_process_first():  # rank 0 builds a tiny:<preset> model, the others reuse it
        resolve_model_path(config.model.model_name_or_path, config.model.cache_dir)
    if run.writer and config.output.overwrite_output_dir and resume_from is None and run.path.exists():
        _clear_run(run)
    run.create()
    resolved = config.model_copy(
        update={"output": config.output.model_copy(update={"output_dir": str(run.path)})}
    )
    run.write_config(dump_config(resolved))

    t = config.training
    ctx = RunContext(
        dtype,
        describe_compute_choice(compute_type),
        console,
        list(callbacks),
        global_batch_size=global_batch(t.per_device_train_batch_size, t.gradient_accumulation_steps),
    )
    ctx.say(f"run directory: {run.path}")
    ctx.say(f"precision: {ctx.compute_reason}")
    if distributed.is_distributed():
        ctx.say(describe_world(config))
    if resume_from is not None:
        step = int(resume_from.name.split("-")[-1])
        # rows past the checkpoint are rewritten by the resumed run (this also drops a torn last line)
        run.truncate_log_after(step)
        torn = _remove_torn_checkpoints(run) if run.writer else []
        run.write_event(
            "resume",
            f"resuming from {resume_from.name}"
            + (f"; removed incomplete {', '.join(p.name for p in torn)}" if torn else ""),
            checkpoint=str(resume_from),
            step=step,
        )
        ctx.say(f"resuming from {resume_from}")
        describe_resume_world(run, resume_from, config, ctx)
    set_seed(config.training.seed)
    result = stage_fn(resolved, run, ctx, resume_from)
    if (config.training.do_eval or config.training.do_predict) and distributed.is_writer():
        result = evaluate_after_training(resolved, result, console)  # rank 0 evaluates the saved run
    distributed.barrier()  # ranks end together: the launcher reads one exit code for the run
    return result


def _clear_run(run: RunDir) -> None:
    """overwrite_output_dir: remove the previous run's outputs (only files tunelab writes)."""
    import shutil

    for ckpt in [*run.checkpoints(), *_torn_checkpoints(run)]:
        shutil.rmtree(ckpt)
    for name in ("trainer_log.jsonl", "events.jsonl", "metrics.json"):
        (run.path / name).unlink(missing_ok=True)


def _torn_checkpoints(run: RunDir) -> list[Path]:
    """checkpoint-* folders whose save never finished (the process died while writing them)."""
    complete = set(run.checkpoints())
    return sorted(
        p for p in run.path.glob("checkpoint-*") if p.is_dir() and p not in complete and p.name[11:].isdigit()
    )


def _remove_torn_checkpoints(run: RunDir) -> list[Path]:
    """Delete torn checkpoint folders: the resumed run saves those steps again, and transformers'
    checkpoint rotation would otherwise count (and keep) them."""
    import shutil

    torn = _torn_checkpoints(run)
    for path in torn:
        shutil.rmtree(path)
    return torn
