"""Whether a run directory can be trained into, and from which checkpoint: the resume decision.

`tunelab train` takes this decision when it starts, and the web UI takes the same one before it
launches a job, so a run directory that already holds a run is refused at once with the choices
(resume it, or overwrite it) instead of in a subprocess 20 seconds later. Reads files only (no torch).
"""

from __future__ import annotations

from pathlib import Path

from tunelab.errors import ConfigError
from tunelab.runs.rundir import RunDir

__all__ = ["ExistingRunError", "existing_run", "resume_point"]


class ExistingRunError(ConfigError):
    """``output_dir`` holds a run (``checkpoint``: its latest one, None for a finished run), and
    neither resume nor overwrite was chosen."""

    def __init__(self, run_dir: Path, checkpoint: Path | None) -> None:
        what = "a finished run" if checkpoint is None else f"checkpoints up to {checkpoint.name}"
        super().__init__(
            f"output_dir {run_dir} already holds {what}",
            "resume it with resume_from_checkpoint=auto, choose another output_dir, "
            "or set overwrite_output_dir=true to start over",
            code="output_dir_exists",
            params={
                "path": str(run_dir),
                "finished": checkpoint is None,
                "checkpoint": checkpoint.name if checkpoint is not None else "",
            },
        )
        self.run_dir, self.checkpoint = run_dir, checkpoint


def existing_run(run: RunDir) -> ExistingRunError | None:
    """What a new run in ``run`` would overwrite (a finished run, or saved checkpoints), as the error
    that refuses it; None when the directory holds neither."""
    if run.is_finished():
        return ExistingRunError(run.path, None)
    latest = run.latest_checkpoint()
    return ExistingRunError(run.path, latest) if latest is not None else None


def resume_point(
    run: RunDir, wanted: str | None, *, overwrite: bool, output_dir_given: bool = True
) -> Path | None:
    """The checkpoint to resume from (``resume_from_checkpoint`` = ``wanted``), or None for a fresh run.

    ``wanted``: None (a new run), 'auto' (the run's latest checkpoint; none yet = from the start) or
    a checkpoint folder. Refuses, with a ConfigError naming the fix, a checkpoint that cannot resume
    exactly, and (unless ``overwrite``) a new run over finished work or saved checkpoints.
    """
    if wanted == "auto":
        latest = run.latest_checkpoint()
        if latest is None and not output_dir_given:
            raise ConfigError(
                "resume_from_checkpoint=auto needs the run directory to resume",
                "add output_dir=<the run directory> (runs/... printed when the run started)",
            )
        _check_not_behind_finished_run(run, latest)
        # None: nothing saved yet, start from the beginning
        return _check_resumable(latest) if latest is not None else None
    if wanted:
        path = Path(wanted)
        if not (path / "trainer_state.json").is_file():
            raise ConfigError(
                f"resume_from_checkpoint={wanted}: no checkpoint there (trainer_state.json missing)",
                f"use a checkpoint-* folder of the run, or 'auto'; found: {[p.name for p in run.checkpoints()]}",
            )
        return _check_resumable(path)
    existing = existing_run(run)
    if not overwrite and existing is not None:
        raise existing
    return None


def _check_resumable(checkpoint: Path) -> Path:
    """``checkpoint``, if it holds the training state (not only weights) needed to resume exactly.

    The Trainer saves RNG state together with optimizer and scheduler state, and skips all three
    with save_only_model; without them a "resumed" run would silently restart the optimizer.
    """
    if not any(checkpoint.glob("rng_state*.pth")):
        raise ConfigError(
            f"{checkpoint} holds weights only (saved with save_only_model=true): no optimizer, "
            "scheduler or RNG state to resume from",
            f"start a new run from its weights instead: adapter_name_or_path={checkpoint} (LoRA) or "
            f"model_name_or_path={checkpoint} (full), with another output_dir",
        )
    return checkpoint


def _check_not_behind_finished_run(run: RunDir, latest: Path | None) -> None:
    """Refuse to resume a finished run from a checkpoint older than its end: that would redo
    (and overwrite) finished steps. It happens when save_total_limit=1 kept only the best checkpoint,
    which transformers does at the end of a run; the final weights are in the run directory itself."""
    finished_at = run.read_metrics().get("global_step") if run.is_finished() else None
    if not isinstance(finished_at, int):
        return
    at = int(latest.name.split("-")[-1]) if latest is not None else 0
    if at < finished_at:
        kept = f"its latest checkpoint is {latest.name}" if latest is not None else "it kept no checkpoint"
        raise ConfigError(
            f"{run.path} finished at step {finished_at}, but {kept}: resuming would redo steps {at + 1}-{finished_at}",
            f"to train on, start a new run from its final weights (adapter_name_or_path={run.path} for LoRA, "
            f"model_name_or_path={run.path} otherwise) with another output_dir",
        )
