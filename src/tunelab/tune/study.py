"""`tunelab tune`: an Optuna study over the ``tune:`` space, each trial an ordinary run directory.

The study lives in an Optuna storage (SQLite in the study directory unless ``tune.storage`` names
an RDB URL), so it survives the process: running the command again continues it up to
``tune.n_trials`` trials in total, and several workers (local processes, or `tunelab tune` on other
machines against one PostgreSQL URL) share it. Trials report each evaluation to the pruner from
inside training (tune/pruning.py); a pruned trial still leaves a complete run directory. Workers
never run more than ``n_trials`` trials together: see tune/budget.py for how a trial that two
workers started for the same last slot is refused.
"""

from __future__ import annotations

import math
import multiprocessing
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunelab.config import RunConfig, config_from_dict
from tunelab.config.schema_tune import ParamSpec
from tunelab.errors import ConfigError
from tunelab.tune.budget import SURPLUS, count_trials, surplus_reason
from tunelab.tune.search import build_pruner, build_sampler, suggest_params
from tunelab.tune.space import apply_params, baseline_params, resolve_space
from tunelab.tune.storage import open_storage, storage_url
from tunelab.tune.summary import write_study_files
from tunelab.tune.sweep import config_fingerprint
from tunelab.tune.trials import TrialOutcome, check_objective, init_worker, run_trial, say, trial_dir_name

__all__ = ["StudyResult", "tune", "write_best_config"]

_LOG_DEFAULT = ("learning_rate", "weight_decay")


class TrialFailed(Exception):
    """Raised inside the objective so that Optuna records the trial as failed and goes on."""


@dataclass
class StudyResult:
    """The study after this call: every trial (earlier sessions and other workers included)."""

    study_dir: Path
    study_name: str
    storage: str  # URL with any password hidden
    trials: list[TrialOutcome]
    best: TrialOutcome | None
    best_config: Path | None
    summary: dict[str, Any]
    plots: list[Path] = field(default_factory=list)
    interrupted: bool = False


def _objective(
    base: RunConfig,
    study_dir: Path,
    space: Mapping[str, ParamSpec],
    console: Any,
    n_trials: int,
    nproc_per_node: int = 1,
) -> Any:
    from tunelab.tune.pruning import PruningCallback

    metric = base.tune.metric
    # (multi-process trials train in child processes the pruning callback cannot reach)
    prunes = base.tune.pruner != "none" and metric.startswith("eval_") and nproc_per_node == 1

    def objective(trial: Any) -> float:
        # first, before any parameter is drawn or a directory made: another worker may have started
        # the last trial of the budget at the same moment as this one (tune/budget.py)
        if (reason := surplus_reason(trial, n_trials)) is not None:
            say(console, f"trial {trial.number}: {reason}")
            trial.study.stop()
            raise TrialFailed(reason)
        params = suggest_params(trial, space)
        run_dir = study_dir / trial_dir_name(trial.number, params)
        trial.set_user_attr("run_dir", str(run_dir))
        say(console, f"[bold]trial {trial.number}[/]: {run_dir.name}")
        callbacks = [PruningCallback(trial, metric, base.tune.pruner)] if prunes else []
        outcome = run_trial(
            base, params, run_dir, trial.number, metric, callbacks=callbacks, nproc_per_node=nproc_per_node
        )
        for key in ("steps", "total_steps", "seconds"):
            trial.set_user_attr(key, getattr(outcome, key))
        say(console, outcome.describe(metric))
        if outcome.status == "complete":
            return float(outcome.value)  # type: ignore[arg-type]
        if outcome.status == "interrupted":  # Ctrl-C: end the study; this trial does not count
            trial.set_user_attr("interrupted", True)
            trial.study.stop()
            raise TrialFailed(outcome.reason)
        trial.set_user_attr("reason", outcome.reason)
        if outcome.status == "pruned":
            import optuna

            raise optuna.TrialPruned(outcome.reason)
        raise TrialFailed(outcome.reason)

    return objective


def _counted(study: Any) -> tuple[int, int]:
    """(trials that count towards n_trials, trials running now). Interrupted and crashed trials
    (failed without a recorded reason) and surplus ones do not count: resuming the study runs them again."""
    return count_trials(study.get_trials(deepcopy=False))


def _optimize(
    study: Any,
    base: RunConfig,
    study_dir: Path,
    n_trials: int,
    timeout: float | None,
    console: Any,
    nproc_per_node: int = 1,
) -> None:
    """Run trials until the study holds ``n_trials`` counted trials (or ``timeout`` passes).

    The checks here (before the first trial and after each) only save starting a trial that would be
    refused; the objective's own check is the one that keeps the budget when workers race.
    """
    space = resolve_space(base)

    def enough(study: Any, trial: Any) -> None:
        # before this worker starts another trial: do the finished trials plus those other workers
        # are running already fill the budget?
        done, running = _counted(study)
        if done + running >= n_trials:
            study.stop()

    done, running = _counted(study)
    if done + running >= n_trials:
        return
    study.optimize(
        _objective(base, study_dir, space, console, n_trials, nproc_per_node),
        n_trials=n_trials - done - running,
        timeout=timeout,
        catch=(TrialFailed,),
        callbacks=[enough],
    )


def _worker_main(
    flat: dict[str, Any],
    study_dir: str,
    url: str,
    name: str,
    n_trials: int,
    timeout: float | None,
    index: int,
    threads: int,
    nproc_per_node: int = 1,
) -> None:
    """A local worker process: load the shared study and run trials until the budget is met."""
    import optuna

    init_worker(threads)
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # trials are reported by us
    base = config_from_dict(flat)
    seed = (base.tune.seed if base.tune.seed is not None else base.training.seed) + index
    space = resolve_space(base)
    study = optuna.load_study(
        study_name=name,
        storage=open_storage(url),
        sampler=build_sampler(base.tune, space, seed, n_trials),
        pruner=build_pruner(base.tune),
    )
    from rich.console import Console

    _optimize(study, base, Path(study_dir), n_trials, timeout, Console(stderr=True), nproc_per_node)


def _outcomes(study: Any) -> list[TrialOutcome]:
    """Every trial of the study but the surplus ones (refused before training, see tune/budget.py)."""
    from optuna.trial import TrialState

    states = {
        TrialState.COMPLETE: "complete",
        TrialState.PRUNED: "pruned",
        TrialState.FAIL: "failed",
        TrialState.RUNNING: "running",
        TrialState.WAITING: "waiting",
    }
    outcomes = []
    for t in study.get_trials(deepcopy=False):
        attrs = t.user_attrs
        if attrs.get(SURPLUS):
            continue
        status = "interrupted" if attrs.get("interrupted") else states[t.state]
        reason = attrs.get("reason")
        if status == "failed" and not reason:
            reason = "no result recorded: the worker process ended during this trial"
        outcomes.append(
            TrialOutcome(
                number=t.number,
                params=dict(t.params),
                run_dir=Path(attrs.get("run_dir", "")),
                status=status,
                value=t.value if t.state == TrialState.COMPLETE else None,
                reason=reason,
                seconds=float(attrs.get("seconds") or 0.0),
                steps=attrs.get("steps"),
                total_steps=attrs.get("total_steps"),
            )
        )
    return outcomes


def write_best_config(
    base: RunConfig, best: TrialOutcome, study_dir: Path, study_name: str, metric: str
) -> Path:
    """best.yaml: the base config with the best trial's values, trained into <study>/best."""
    from tunelab.config import dump_config
    from tunelab.runs.rundir import atomic_write_text

    config = apply_params(base, best.params)
    config = config.model_copy(
        update={"output": config.output.model_copy(update={"output_dir": str(study_dir / "best")})}
    )
    path = study_dir / "best.yaml"
    header = (
        f"# best trial {best.number} of study {study_name!r}: {metric}={best.value:.6g}\n"
        f"# parameters: {best.params}\n# train it: tunelab train {path}\n"
    )
    atomic_write_text(path, header + dump_config(config))
    return path


def tune(
    config: RunConfig,
    study_dir: str | Path,
    *,
    n_trials: int | None = None,
    timeout: float | None = None,
    n_workers: int | None = None,
    storage: str | None = None,
    console: Any = None,
    nproc_per_node: int = 1,
) -> StudyResult:
    """Run (or continue) the study in ``study_dir``; arguments left None come from ``config.tune``.

    ``nproc_per_node > 1``: each trial trains with that many processes (torchrun), to its end: the
    pruner cannot stop a trial inside its child processes. Workers on several machines still share
    the study through an RDB ``storage``.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # trials are reported by us
    check_objective(config)
    t = config.tune
    n_trials = n_trials or t.n_trials
    timeout = timeout if timeout is not None else t.timeout
    n_workers = n_workers or t.n_workers
    study_dir = Path(study_dir).resolve()
    study_dir.mkdir(parents=True, exist_ok=True)
    url = storage_url(storage or t.storage, study_dir)
    name = t.study_name or study_dir.name
    space = resolve_space(config)
    seed = t.seed if t.seed is not None else config.training.seed
    study = optuna.create_study(
        study_name=name,
        storage=open_storage(url),
        sampler=build_sampler(t, space, seed, n_trials),
        pruner=build_pruner(t),
        direction="minimize" if t.lower_is_better else "maximize",
        load_if_exists=True,
    )
    _check_same_base(study, config, name)
    if not study.get_trials(deepcopy=False):
        if t.baseline_first and (baseline := baseline_params(config, space)):
            study.enqueue_trial(baseline, user_attrs={"baseline": True})
        for params in t.enqueue:
            study.enqueue_trial(params, skip_if_exists=True)
    done, _ = _counted(study)
    say(
        console,
        f"study {name!r} in {study_dir}: {done} of {n_trials} trials done; storage {_hide_password(url)}",
    )
    interrupted = False
    try:
        if n_workers <= 1:
            _optimize(study, config, study_dir, n_trials, timeout, console, nproc_per_node)
        else:
            _run_workers(config, study_dir, url, name, n_trials, timeout, n_workers, console, nproc_per_node)
    except KeyboardInterrupt:
        interrupted = True
    return _finish(study, config, study_dir, name, url, interrupted or _was_interrupted(study))


def _was_interrupted(study: Any) -> bool:
    trials = [t for t in study.get_trials(deepcopy=False) if not t.user_attrs.get(SURPLUS)]
    return any(t.user_attrs.get("interrupted") for t in trials[-1:])


def _check_same_base(study: Any, config: RunConfig, name: str) -> None:
    """Trials of one study must share the base config (apart from output and tune settings)."""
    fingerprint = config_fingerprint(config)
    recorded = study.user_attrs.get("base_config")
    if recorded is None:
        study.set_user_attr("base_config", fingerprint)
    elif recorded != fingerprint:
        raise ConfigError(
            f"study {name!r} was run with a different config (model, data or training settings changed), "
            "so its trials are not comparable with new ones",
            "continue it with the original config, or start a new study with --study-dir <new folder>",
        )


def _run_workers(
    config: RunConfig,
    study_dir: Path,
    url: str,
    name: str,
    n_trials: int,
    timeout: float | None,
    n_workers: int,
    console: Any,
    nproc_per_node: int = 1,
) -> None:
    """``n_workers`` spawned processes sharing the study's storage, each with its share of threads."""
    if url.startswith("sqlite") and n_workers > 4:
        say(console, "[yellow]note[/]: SQLite serialises writes; beyond ~4 workers use a PostgreSQL URL")
    threads = max(1, (os.cpu_count() or 1) // n_workers)
    ctx = multiprocessing.get_context("spawn")
    # one line per finished trial; progress bars of parallel trials would interleave
    flat = {**config.to_flat(), "disable_tqdm": True}
    procs = [
        ctx.Process(
            target=_worker_main,
            args=(flat, str(study_dir), url, name, n_trials, timeout, i, threads, nproc_per_node),
            name=f"tunelab-tune-worker-{i}",
        )
        for i in range(n_workers)
    ]
    say(console, f"starting {n_workers} worker processes ({threads} threads each)")
    for proc in procs:
        proc.start()
    try:
        for proc in procs:
            proc.join()
    except KeyboardInterrupt:  # the workers got the signal too: let them save and stop
        for proc in procs:
            proc.join()
        raise
    failed = [p.name for p in procs if p.exitcode not in (0, None)]
    if failed:
        say(console, f"[red]worker(s) exited with an error[/]: {', '.join(failed)} (see the messages above)")


def _hide_password(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _finish(
    study: Any, config: RunConfig, study_dir: Path, name: str, url: str, interrupted: bool
) -> StudyResult:
    from tunelab.tune.study_plots import plot_study

    outcomes = _outcomes(study)
    metric = config.tune.metric
    lower = config.tune.lower_is_better
    done = [o for o in outcomes if o.status == "complete" and o.value is not None and math.isfinite(o.value)]
    best = min(done, key=lambda o: o.value if lower else -o.value) if done else None  # type: ignore[arg-type, operator]
    best_config = write_best_config(config, best, study_dir, name, metric) if best else None
    space = resolve_space(config)
    log_params = [k for k, s in space.items() if s.log or (k in _LOG_DEFAULT and s.choices is None)]
    extra = {
        "kind": "tune",
        "base_config": config_fingerprint(config),  # how advise finds the study of a config
        "study_name": name,
        "storage": _hide_password(url),
        "sampler": config.tune.sampler,
        "pruner": config.tune.pruner,
        "best_config": str(best_config) if best_config else None,
        # trials refused because the budget was full when they started: in no table, plot or best
        "n_surplus": sum(1 for t in study.get_trials(deepcopy=False) if t.user_attrs.get(SURPLUS)),
    }
    summary = write_study_files(
        study_dir, outcomes, metric=metric, lower_is_better=lower, log_params=log_params, extra=extra
    )
    plots = [Path(p) for p in summary.get("plots", [])] + plot_study(study, study_dir / "plots")
    return StudyResult(
        study_dir, name, _hide_password(url), outcomes, best, best_config, summary, plots, interrupted
    )
