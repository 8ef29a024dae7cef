"""The search space of a study: which config keys vary, how they are sampled, and how a set of
values becomes a validated trial config.

Shared by `tunelab sweep` (grid / around / random, no Optuna) and `tunelab tune` (Optuna), so both
search the same space in the same way and name trials alike. No torch or optuna import here.
"""

from __future__ import annotations

import math
import random
import types
import typing
from collections.abc import Mapping
from typing import Any

from tunelab.config import RunConfig, config_from_dict
from tunelab.config.run_config import KEY_TO_GROUP
from tunelab.config.schema import GROUP_TYPES
from tunelab.config.schema_tune import DERIVED_PARAMS, ParamSpec
from tunelab.errors import ConfigError

__all__ = [
    "apply_params",
    "around_values",
    "baseline_params",
    "current_value",
    "default_space",
    "format_space",
    "grid_points",
    "param_kind",
    "resolve_space",
    "sample_params",
    "short_label",
    "short_name",
]

# Short names for trial directory labels (trial-003-lr0.0003-r16); other keys keep their own name.
_SHORT = {
    "learning_rate": "lr",
    "lora_rank": "r",
    "lora_alpha": "alpha",
    "lora_alpha_ratio": "aratio",
    "lora_dropout": "drop",
    "per_device_train_batch_size": "bs",
    "gradient_accumulation_steps": "ga",
    "warmup_ratio": "wu",
    "weight_decay": "wd",
    "num_train_epochs": "ep",
    "lr_scheduler_type": "",
    "max_steps": "steps",
    "cutoff_len": "len",
}


def param_kind(key: str) -> str:
    """'int', 'float' or 'categorical': how a parameter is sampled, from its config field's type."""
    if key in DERIVED_PARAMS:
        return "float"
    group = KEY_TO_GROUP.get(key)
    if group is None or group not in GROUP_TYPES:
        raise ConfigError(f"{key!r} is not a flat config key", "search keys such as learning_rate, lora_rank")
    annotation = GROUP_TYPES[group].model_fields[key].annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
    else:
        args = [annotation]
    if args == [int]:
        return "int"
    if args and all(a in (int, float) for a in args):
        return "float"
    return "categorical"


def current_value(config: RunConfig, key: str) -> Any:
    """The config's value of a search parameter (lora_alpha_ratio from lora_alpha / lora_rank)."""
    if key == "lora_alpha_ratio":
        f = config.finetuning
        return f.effective_lora_alpha / f.lora_rank
    return config.to_flat()[key]


def _sig(value: float, digits: int = 3) -> float:
    """``value`` rounded to ``digits`` significant digits (tidy learning rates in configs and names)."""
    return float(f"{value:.{digits}g}")


def default_space(config: RunConfig) -> dict[str, ParamSpec]:
    """A search space built around ``config``: what practitioners tune first, in sensible ranges.

    learning_rate a decade either side of the config's (log scale), LoRA rank 4-32 with alpha as
    1x/2x/4x the rank, warm-up 0-20%, weight decay 0-0.1, three common schedules, half/same/double
    gradient accumulation, and half/same/double epochs when training by epochs. The config's own
    value is always among the choices, so the baseline trial lies inside the space.
    """
    t, f = config.training, config.finetuning
    lr = t.learning_rate
    space: dict[str, ParamSpec] = {
        "learning_rate": ParamSpec(low=_sig(lr / 10), high=_sig(lr * 10), log=True)
    }
    if f.finetuning_type == "lora":
        space["lora_rank"] = ParamSpec(choices=sorted({4, 8, 16, 32, f.lora_rank}))
        ratio = _sig(f.effective_lora_alpha / f.lora_rank)
        space["lora_alpha_ratio"] = ParamSpec(choices=sorted({1.0, 2.0, 4.0, ratio}))
    space["warmup_ratio"] = ParamSpec(low=0.0, high=max(0.2, t.warmup_ratio))
    space["weight_decay"] = ParamSpec(low=0.0, high=max(0.1, t.weight_decay))
    schedules = ["cosine", "linear", "constant_with_warmup"]
    space["lr_scheduler_type"] = ParamSpec(
        choices=schedules + ([t.lr_scheduler_type] if t.lr_scheduler_type not in schedules else [])
    )
    g = t.gradient_accumulation_steps
    space["gradient_accumulation_steps"] = ParamSpec(choices=sorted({max(1, g // 2), g, 2 * g}))
    if t.max_steps <= 0:
        e = t.num_train_epochs
        space["num_train_epochs"] = ParamSpec(choices=sorted({max(1.0, e / 2), e, 2 * e}))
    return space


def resolve_space(config: RunConfig) -> dict[str, ParamSpec]:
    """``tune.space`` when the config sets one, else :func:`default_space`; kinds checked."""
    space = dict(config.tune.space) or default_space(config)
    for key, spec in space.items():
        if spec.choices is None and param_kind(key) == "categorical":
            raise ConfigError(
                f"tune.space.{key}: {key} is not numeric, so it has no low/high range",
                f"list the values to try, e.g. tune.space={{{key}: [{current_value(config, key)!r}, ...]}}",
            )
    return space


def grid_points(key: str, spec: ParamSpec) -> list[Any]:
    """The values a grid visits: the choices, the stepped range, or low / middle / high of a range."""
    if spec.choices is not None:
        return list(spec.choices)
    kind = param_kind(key)
    low, high = float(spec.low), float(spec.high)  # type: ignore[arg-type]
    if spec.step is not None:
        n = int(math.floor((high - low) / spec.step + 1e-9))
        points = [low + i * spec.step for i in range(n + 1)]
    elif spec.log:
        points = [low, math.sqrt(low * high), high]
    else:
        points = [low, (low + high) / 2, high]
    if kind == "int":
        return sorted({int(round(p)) for p in points})
    return sorted({_sig(p, 6) for p in points})


def sample_params(space: Mapping[str, ParamSpec], rng: random.Random) -> dict[str, Any]:
    """One random draw from ``space`` (uniform, or log-uniform where ``log``), for `sweep --random`."""
    params: dict[str, Any] = {}
    for key, spec in space.items():
        if spec.choices is not None:
            params[key] = rng.choice(spec.choices)
            continue
        low, high = float(spec.low), float(spec.high)  # type: ignore[arg-type]
        if spec.step is not None:
            value = low + spec.step * rng.randint(0, int(math.floor((high - low) / spec.step + 1e-9)))
        elif spec.log:
            value = math.exp(rng.uniform(math.log(low), math.log(high)))
        else:
            value = rng.uniform(low, high)
        params[key] = int(round(value)) if param_kind(key) == "int" else _sig(value)
    return params


def baseline_params(config: RunConfig, space: Mapping[str, ParamSpec]) -> dict[str, Any]:
    """The config's own values of the searched keys that lie inside the space (the baseline trial)."""
    params: dict[str, Any] = {}
    for key, spec in space.items():
        value = current_value(config, key)
        inside = (
            value in spec.choices
            if spec.choices is not None
            else isinstance(value, (int, float)) and spec.low <= value <= spec.high  # type: ignore[operator]
        )
        if inside:
            params[key] = value
    return params


def around_values(config: RunConfig, key: str) -> list[Any]:
    """0.3x, 1x and 3x the config's value of ``key`` (`sweep --around`); ints rounded, at least 1."""
    if key not in KEY_TO_GROUP and key not in DERIVED_PARAMS:
        raise ConfigError(f"--around {key}: unknown config key", "use a numeric key such as learning_rate")
    kind = param_kind(key)
    value = current_value(config, key)
    if kind == "categorical" or value is None or isinstance(value, bool):
        raise ConfigError(
            f"--around {key}: {key}={value!r} is not a number to scale",
            f"use --grid {key}=a,b,c to list the values instead",
        )
    if value == 0:
        raise ConfigError(
            f"--around {key}: {key} is 0, and 0.3x / 3x of 0 is still 0",
            f"set a non-zero {key} first, or use --grid {key}=a,b,c",
        )
    scaled = [0.3 * value, value, 3 * value]
    if kind == "int":
        return sorted({max(1, int(round(v))) for v in scaled})
    return [_sig(v) for v in scaled]


def apply_params(config: RunConfig, params: Mapping[str, Any]) -> RunConfig:
    """A new validated config with ``params`` set (lora_alpha from lora_alpha_ratio x lora_rank).

    A combination the schema rejects raises ConfigError: the caller records it as a failed trial.
    """
    flat = config.to_flat()
    for key, value in params.items():
        if key not in DERIVED_PARAMS:
            flat[key] = value
    if "lora_alpha_ratio" in params:
        flat["lora_alpha"] = float(params["lora_alpha_ratio"]) * int(flat["lora_rank"])
    return config_from_dict(flat, source="trial parameters " + short_label(params))


def short_name(key: str) -> str:
    """The short form of a parameter name used in labels and table headers (lr, r, wu, ...)."""
    return _SHORT.get(key) or ("sched" if key == "lr_scheduler_type" else key)


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def short_label(params: Mapping[str, Any], limit: int = 60) -> str:
    """A compact, filesystem-safe label of a parameter set: ``lr0.0003-r16-cosine``."""
    parts = [f"{_SHORT.get(k, k)}{_format(v)}" for k, v in params.items()]
    label = "-".join(parts).replace("/", "_").replace(" ", "")
    return label[:limit].rstrip("-")


def format_space(config: RunConfig) -> str:
    """The space a study searches, as YAML to paste under ``tune:`` (`tunelab tune --show-space`)."""
    import yaml

    space = resolve_space(config)
    origin = "tune.space of the config" if config.tune.space else "default space built from the config"
    body = yaml.safe_dump(
        {"tune": {"space": {k: spec.model_dump() for k, spec in space.items()}}}, sort_keys=False
    )
    return f"# {origin}\n{body}"
