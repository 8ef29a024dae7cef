"""Which model to load for eval / chat / api: a config, `--model DIR [--adapter DIR]`, or a run directory.

Everything resolves to one RunConfig, so the engine loads every kind the same way. A run directory is
read through its config.yaml (its template, data split and generation settings come along) plus the
weights it saved: the LoRA adapter on top of the run's base model, or the full model itself. A
`checkpoint-N` folder of a run works too. No torch import here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tunelab.config import RunConfig, load_config
from tunelab.config.schema import ADAPTER_TYPES
from tunelab.errors import ConfigError, ModelError

__all__ = ["find_run_dir", "is_run_dir", "resolve_config", "run_config"]


def is_run_dir(path: str | Path) -> bool:
    """True for a tunelab run directory (or one of its checkpoint folders)."""
    p = Path(path)
    if not p.is_dir():
        return False
    return (p / "config.yaml").is_file() or (
        p.name.startswith("checkpoint-") and (p.parent / "config.yaml").is_file()
    )


def find_run_dir(path: str | Path) -> Path:
    """The run directory of `path` (the path itself, or the run a checkpoint folder belongs to)."""
    p = Path(path)
    if (p / "config.yaml").is_file():
        return p
    if (p.parent / "config.yaml").is_file() and p.name.startswith("checkpoint-"):
        return p.parent
    raise ConfigError(
        f"{p} is not a tunelab run directory (no config.yaml)",
        "pass the directory `tunelab train` wrote (runs/<name>) or one of its checkpoint-* folders",
    )


def run_config(path: str | Path, overrides: Sequence[str] = ()) -> RunConfig:
    """The config that loads the model a run (or a checkpoint of it) trained, with `overrides` applied."""
    weights = Path(path)
    run = find_run_dir(weights)
    config = load_config(run / "config.yaml", overrides)
    if config.finetuning.finetuning_type in ADAPTER_TYPES:
        if not (weights / "adapter_config.json").is_file():
            raise ModelError(
                f"{weights} holds no LoRA adapter (adapter_config.json missing): the run has not finished",
                f"use one of its checkpoints ({_checkpoints(run)}) or let the run finish",
            )
        # training merged all but the last listed adapter and continued the last: the run replaces it
        stacked = list(config.model.adapter_name_or_path or [])[:-1] + [str(weights)]
        model = config.model.model_copy(update={"adapter_name_or_path": stacked})
    else:
        if not (weights / "config.json").is_file():
            raise ModelError(
                f"{weights} holds no model weights (config.json missing): the run has not finished",
                f"use one of its checkpoints ({_checkpoints(run)}) or let the run finish",
            )
        model = config.model.model_copy(
            update={"model_name_or_path": str(weights), "adapter_name_or_path": None}
        )
    return config.model_copy(update={"model": model})


def _checkpoints(run: Path) -> str:
    found = sorted(p.name for p in run.glob("checkpoint-*") if p.is_dir())
    return ", ".join(found) or "none saved"


def resolve_config(
    config: str | Path | RunConfig | None = None,
    overrides: Sequence[str] = (),
    *,
    model: str | None = None,
    adapter: str | Sequence[str] | None = None,
    run: str | Path | None = None,
    template: str | None = None,
) -> RunConfig:
    """One RunConfig from the ways a user names a model; later sources win.

    `config` may be a YAML path, a run directory (same as `run=`), a model directory (same as
    `model=`) or a RunConfig. `model` replaces
    model_name_or_path (dropping the config's adapters unless `adapter` is given); `adapter` sets
    adapter_name_or_path; `template` sets the chat template; `overrides` are key=value strings.
    """
    items = list(overrides)
    if model is not None:
        items.append(f"model_name_or_path={model}")
        if adapter is None:
            items.append("adapter_name_or_path=null")
    if adapter is not None:
        names = [adapter] if isinstance(adapter, (str, Path)) else list(adapter)
        items.append("adapter_name_or_path=" + ",".join(str(a) for a in names))
    if template is not None:
        items.append(f"template={template}")

    if isinstance(config, RunConfig):
        if run is not None:
            raise ConfigError("give a config or a run directory, not both", "drop one of them")
        return _apply(config, items)
    if config is not None and Path(config).is_dir():
        if (Path(config) / "config.json").is_file() and not is_run_dir(config):
            # a plain model folder (e.g. written by `tunelab export`): same as --model
            return resolve_config(None, overrides, model=str(config), adapter=adapter, template=template)
        if run is not None:
            raise ConfigError(f"two run directories given: {config} and {run}", "give one")
        run, config = config, None
    if run is not None:
        if config is not None:
            raise ConfigError(
                f"both a config file ({config}) and a run directory ({run}) were given",
                "the run directory brings its own config.yaml; add key=value overrides instead",
            )
        base = run_config(run)
        return _apply(base, items) if items else base
    if config is None and model is None and not any(i.startswith("model_name_or_path=") for i in items):
        raise ConfigError(
            "no model given",
            "pass a config file, a run directory (runs/<name>), or --model DIR [--adapter DIR]",
        )
    return load_config(config, items)


def _apply(config: RunConfig, items: list[str]) -> RunConfig:
    """`items` (key=value) applied on top of a RunConfig, re-validated."""
    from tunelab.config import config_from_dict, parse_overrides

    if not items:
        return config
    flat = config.to_flat()
    flat.update(parse_overrides(items))
    return config_from_dict(flat, source="command line")
