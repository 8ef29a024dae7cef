"""How Optuna searches the ``tune:`` space: the sampler and pruner named in the config, and the
suggest calls that turn a ParamSpec into a trial's value."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from tunelab.config.schema_tune import ParamSpec, TuneArgs
from tunelab.errors import ResourceError
from tunelab.tune.space import grid_points, param_kind

__all__ = ["build_pruner", "build_sampler", "suggest_params"]


def build_sampler(tune_args: TuneArgs, space: Mapping[str, ParamSpec], seed: int, n_trials: int) -> Any:
    """The Optuna sampler named by ``tune.sampler`` (imports optuna)."""
    import optuna

    name = tune_args.sampler
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "grid":
        grid = {key: grid_points(key, spec) for key, spec in space.items()}
        return optuna.samplers.GridSampler(grid, seed=seed)
    if name == "cmaes":
        try:
            import cmaes  # noqa: F401  (optuna imports it lazily, with a less helpful error)
        except ImportError:
            raise ResourceError(
                "tune.sampler=cmaes needs the cmaes package", "pip install cmaes (or choose tpe)"
            ) from None
        # categorical parameters (rank, schedule) are sampled at random beside CMA-ES
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    # TPE: a third of the budget (3-10 trials) explores at random before the model guides sampling;
    # multivariate TPE models parameters jointly (LR and batch size interact)
    startup = max(3, min(10, n_trials // 3))
    with warnings.catch_warnings():  # multivariate is marked experimental since Optuna 2.2
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, multivariate=True)


def build_pruner(tune_args: TuneArgs) -> Any:
    """The Optuna pruner named by ``tune.pruner``."""
    import optuna

    warmup = tune_args.prune_warmup_steps
    if tune_args.pruner == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=tune_args.prune_startup_trials, n_warmup_steps=warmup
        )
    if tune_args.pruner == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=max(1, warmup) if warmup else "auto")
    if tune_args.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=max(1, warmup))
    return optuna.pruners.NopPruner()


def suggest_params(trial: Any, space: Mapping[str, ParamSpec]) -> dict[str, Any]:
    """Ask ``trial`` for one value of every parameter of ``space``."""
    params: dict[str, Any] = {}
    for key, spec in space.items():
        if spec.choices is not None:
            params[key] = trial.suggest_categorical(key, spec.choices)
        elif param_kind(key) == "int":
            step = int(spec.step or 1)
            params[key] = trial.suggest_int(key, int(spec.low), int(spec.high), step=step, log=spec.log)  # type: ignore[arg-type]
        else:
            params[key] = trial.suggest_float(key, spec.low, spec.high, step=spec.step, log=spec.log)  # type: ignore[arg-type]
    return params
