"""`tunelab sweep`: run a grid, 0.3x/1x/3x around current values, or random draws from the
``tune:`` space, one trial after another or in parallel worker processes.

Every trial is an ordinary run directory inside the study directory. Running the same sweep again
skips trials that already ended (same parameters, same base config), so an interrupted sweep
continues where it stopped, and a wider grid only runs what is new.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import random
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tunelab.config import RunConfig, config_from_dict
from tunelab.config.run_config import KEY_TO_GROUP
from tunelab.config.schema_tune import DERIVED_PARAMS
from tunelab.errors import ConfigError, ResourceError
from tunelab.tune.space import around_values, param_kind, resolve_space, sample_params
from tunelab.tune.summary import write_study_files
from tunelab.tune.trials import (
    TrialOutcome,
    check_objective,
    init_worker,
    read_trials,
    run_trial,
    say,
    trial_dir_name,
)

__all__ = ["SweepResult", "config_fingerprint", "parse_grid", "plan_sweep", "split_sweep_items", "sweep"]


@dataclass
class SweepResult:
    """Every trial in the study directory (earlier ones included) and the summary written."""

    study_dir: Path
    trials: list[TrialOutcome]
    summary: dict[str, Any]
    interrupted: bool = False


def _check_key(key: str, flag: str) -> None:
    if key not in DERIVED_PARAMS and (key not in KEY_TO_GROUP or KEY_TO_GROUP[key] == key):
        import difflib

        close = difflib.get_close_matches(key, [k for k, g in KEY_TO_GROUP.items() if k != g], n=1)
        raise ConfigError(
            f"{flag} {key}: unknown config key" + (f" — did you mean '{close[0]}'?" if close else ""),
            "sweep flat config keys such as learning_rate, lora_rank, warmup_ratio",
        )


def parse_grid(items: Sequence[str]) -> dict[str, list[Any]]:
    """``["learning_rate=3e-5,1e-4", "lora_rank=8,16"]`` -> {key: [values]} (values read as YAML)."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        for part in item.split():
            key, sep, raw = part.partition("=")
            if not sep or not raw:
                raise ConfigError(
                    f"--grid {part!r} is not of the form key=v1,v2,...",
                    "e.g. --grid learning_rate=3e-5,1e-4,3e-4",
                )
            _check_key(key, "--grid")
            grid[key] = [_coerce(key, v.strip()) for v in raw.split(",") if v.strip()]
    return grid


def _coerce(key: str, raw: str) -> Any:
    """A grid value as the key's type: YAML reads 1e-4 as text (it wants 1.0e-4), users write 1e-4."""
    value = yaml.safe_load(raw)
    kind = param_kind(key)
    if kind in ("int", "float") and isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ConfigError(
                f"--grid {key}={raw}: not a number", f"{key} takes numbers, e.g. {key}=1e-4,3e-4"
            ) from None
    if kind == "int" and isinstance(value, float) and value.is_integer():
        value = int(value)
    return value


def split_sweep_items(items: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split positional ``key=value`` items into config overrides and grid axes.

    ``tunelab sweep cfg.yaml --grid learning_rate=1e-4,3e-4 lora_rank=8,16``: the shell gives
    ``lora_rank=8,16`` to the positional overrides. A comma-separated value of a numeric or choice
    key cannot be a plain override, so it is a grid axis; text and list keys (dataset=a,b,
    lora_target=q_proj,v_proj) stay overrides.
    """
    overrides, axes = [], []
    for item in items:
        key, _, raw = item.partition("=")
        is_axis = "," in raw and (key in DERIVED_PARAMS or (key in KEY_TO_GROUP and _is_scalar_key(key)))
        (axes if is_axis else overrides).append(item)
    return overrides, axes


def _is_scalar_key(key: str) -> bool:
    if KEY_TO_GROUP[key] == key:  # a nested group name
        return False
    if param_kind(key) != "categorical":
        return True
    from tunelab.config.schema import GROUP_TYPES

    return "Literal" in str(GROUP_TYPES[KEY_TO_GROUP[key]].model_fields[key].annotation)


def plan_sweep(
    config: RunConfig,
    *,
    grid: Mapping[str, Sequence[Any]] | None = None,
    around: Sequence[str] = (),
    n_random: int = 0,
    seed: int | None = None,
) -> list[dict[str, Any]]:
    """The parameter sets to run: the product of grid axes and --around keys, or N random draws."""
    axes: dict[str, list[Any]] = {k: list(v) for k, v in (grid or {}).items()}
    for key in around:
        _check_key(key, "--around")
        if key in axes:
            raise ConfigError(f"{key} is given to both --grid and --around", "keep one of the two")
        axes[key] = around_values(config, key)
    if n_random and axes:
        raise ConfigError(
            "--random draws from the tune: space and cannot be combined with --grid/--around",
            "use one: a grid (--grid/--around), or --random N (set the space with tune.space)",
        )
    if n_random:
        rng = random.Random(config.training.seed if seed is None else seed)
        space = resolve_space(config)
        return [sample_params(space, rng) for _ in range(n_random)]
    if not axes:
        raise ConfigError(
            "nothing to sweep", "give --grid key=a,b,c, --around key (0.3x/1x/3x) or --random N"
        )
    return [dict(zip(axes, values)) for values in itertools.product(*axes.values())]


def config_fingerprint(config: RunConfig) -> str:
    """A short hash of the config apart from output and tune settings: trials only match their own base."""
    values = config.model_dump(mode="json", exclude={"output", "tune"})
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode("utf-8")).hexdigest()[:12]


def _assign_numbers(
    plans: Sequence[dict[str, Any]], existing: Sequence[TrialOutcome], fingerprint: str
) -> tuple[list[tuple[int, dict[str, Any]]], list[TrialOutcome]]:
    """(number, params) of the trials still to run, and the earlier trials that already cover a plan."""
    done = {
        (repr(sorted(t.params.items())), t.extra.get("base")): t
        for t in existing
        if t.status != "interrupted"
    }
    used = {t.number for t in existing}
    todo, reused = [], []
    counter = itertools.count()
    for params in plans:
        hit = done.get((repr(sorted(params.items())), fingerprint))
        if hit is not None:
            reused.append(hit)
            continue
        match = next((t.number for t in existing if t.params == params and t.status == "interrupted"), None)
        number = match if match is not None else next(n for n in counter if n not in used)
        used.add(number)
        todo.append((number, params))
    return todo, reused


def _run_in_worker(
    flat: dict[str, Any],
    params: dict[str, Any],
    run_dir: str,
    number: int,
    metric: str,
    base: str,
    nproc_per_node: int = 1,
) -> dict[str, Any]:
    """A trial in a worker process (the config travels as plain data)."""
    outcome = run_trial(
        config_from_dict(flat),
        params,
        Path(run_dir),
        number,
        metric,
        extra={"base": base},
        nproc_per_node=nproc_per_node,
    )
    return outcome.to_json()


def sweep(
    config: RunConfig,
    study_dir: str | Path,
    plans: Sequence[dict[str, Any]],
    *,
    n_workers: int | None = None,
    console: Any = None,
    nproc_per_node: int = 1,
) -> SweepResult:
    """Run the planned trials into ``study_dir`` and write the study summary (see module docstring).

    ``nproc_per_node > 1``: each trial trains with that many processes (torchrun).
    """
    check_objective(config)
    n_workers = n_workers or config.tune.n_workers
    study = Path(study_dir)
    study.mkdir(parents=True, exist_ok=True)
    fingerprint = config_fingerprint(config)
    todo, reused = _assign_numbers(plans, read_trials(study), fingerprint)
    metric = config.tune.metric
    if reused:
        say(
            console,
            f"{len(reused)} of {len(plans)} trials already ran in {study}; running the other {len(todo)}",
        )
    interrupted = False
    if n_workers <= 1:
        for i, (number, params) in enumerate(todo, start=1):
            run_dir = study / trial_dir_name(number, params)
            say(console, f"[bold]trial {number}[/] ({i}/{len(todo)}): {run_dir.name}")
            outcome = run_trial(
                config,
                params,
                run_dir,
                number,
                metric,
                extra={"base": fingerprint},
                nproc_per_node=nproc_per_node,
            )
            say(console, outcome.describe(metric))
            if outcome.status == "interrupted":
                interrupted = True
                break
    elif todo:
        interrupted = _run_parallel(config, study, todo, n_workers, fingerprint, console, nproc_per_node)
    # trials of another base config (say, other max_steps) in the same folder are not comparable
    everything = read_trials(study)
    trials = [t for t in everything if t.extra.get("base") == fingerprint]
    if len(trials) < len(everything):
        say(console, f"{len(everything) - len(trials)} trials in {study} ran another config; not ranked here")
    space_keys = [k for p in plans for k in p]
    log_params = [k for k in dict.fromkeys(space_keys) if k in ("learning_rate", "weight_decay")]
    summary = write_study_files(
        study,
        trials,
        metric=metric,
        lower_is_better=config.tune.lower_is_better,
        log_params=log_params,
        extra={"kind": "sweep", "base_config": fingerprint},
    )
    return SweepResult(study, trials, summary, interrupted)


def _run_parallel(
    config: RunConfig,
    study: Path,
    todo: Sequence[tuple[int, dict[str, Any]]],
    n_workers: int,
    fingerprint: str,
    console: Any,
    nproc_per_node: int = 1,
) -> bool:
    """Trials in ``n_workers`` spawned processes, each with its share of the CPU threads."""
    import multiprocessing

    threads = max(1, (os.cpu_count() or 1) // n_workers)
    # one line per finished trial; progress bars of parallel trials would interleave
    flat = {**config.to_flat(), "disable_tqdm": True}
    metric = config.tune.metric
    interrupted = False
    say(console, f"running {len(todo)} trials in {n_workers} worker processes ({threads} threads each)")
    with ProcessPoolExecutor(
        max_workers=n_workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=init_worker,
        initargs=(threads,),
    ) as pool:
        futures = [
            pool.submit(
                _run_in_worker,
                flat,
                params,
                str(study / trial_dir_name(n, params)),
                n,
                metric,
                fingerprint,
                nproc_per_node,
            )
            for n, params in todo
        ]
        try:
            for future in as_completed(futures):
                outcome = TrialOutcome.from_json(future.result())
                say(console, outcome.describe(metric))
                interrupted = interrupted or outcome.status == "interrupted"
        except KeyboardInterrupt:
            pool.shutdown(wait=True, cancel_futures=True)
            return True
        except BrokenProcessPool:
            raise ResourceError(
                "a sweep worker process died (killed, or out of memory); finished trials are kept",
                f"run the same sweep again to continue, with fewer --workers than {n_workers} if memory is short",
            ) from None
    return interrupted
