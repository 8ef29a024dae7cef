"""Typed run configuration: schema, YAML loading, overrides, help texts (no torch import here)."""

from __future__ import annotations

from tunelab.config.fields import help_text
from tunelab.config.loader import config_from_dict, dump_config, load_config, parse_overrides
from tunelab.config.run_config import KEY_TO_GROUP, RunConfig, all_keys
from tunelab.config.schema import (
    DataArgs,
    EvalArgs,
    ExportArgs,
    FinetuningArgs,
    GenerationArgs,
    ModelArgs,
    OutputArgs,
    PreferenceArgs,
    TrainingArgs,
)

__all__ = [
    "KEY_TO_GROUP",
    "DataArgs",
    "EvalArgs",
    "ExportArgs",
    "FinetuningArgs",
    "GenerationArgs",
    "ModelArgs",
    "OutputArgs",
    "PreferenceArgs",
    "RunConfig",
    "TrainingArgs",
    "all_keys",
    "config_from_dict",
    "dump_config",
    "help_text",
    "load_config",
    "parse_overrides",
]
