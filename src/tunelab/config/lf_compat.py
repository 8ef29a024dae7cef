"""Translate LLaMA-Factory spellings onto tunelab's flat keys before validation.

Two kinds of input are rewritten, each key keeping the place it came from (file line or command line):
- flat keys LLaMA-Factory spells differently (``MAPPED``), e.g. ``disable_gradient_checkpointing``;
- the newer "v1" layout (``model: <path>``, ``peft_config:``, ``dist_config:``, ``train_dataset:`` ...),
  mapped part by part; a part that has no tunelab meaning becomes a problem naming the part.
No torch import here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tunelab.config.foreign_keys import MULTIMODAL_TEMPLATE_MARKS

__all__ = [
    "MAPPED",
    "V1_KEYS",
    "V1_PARTS",
    "Translated",
    "is_multimodal_template",
    "is_v1_layout",
    "translate",
]

# LLaMA-Factory key -> how tunelab reads it (the docs table shows this text)
MAPPED: dict[str, str] = {
    "disable_gradient_checkpointing": "gradient_checkpointing: not <value>",
    "neat_packing": "packing: true (tunelab's packing never attends across samples)",
    "batch_size": "per_device_eval_batch_size (LLaMA-Factory's eval layout)",
    "eval_num_beams": "num_beams",
    "early_stopping_steps": "early_stopping: {enabled: true, patience: <value>, metric: metric_for_best_model}",
}
# value spellings of LLaMA-Factory that tunelab names differently
_VALUE_ALIASES: dict[str, dict[Any, Any]] = {"quantization_method": {"bitsandbytes": "bnb"}}

# keys only the v1 layout uses (a config with any of them is read as v1)
V1_KEYS = frozenset(
    "model_class init_config peft_config kernel_config quant_config dist_config train_dataset "
    "micro_batch_size global_batch_size sample_backend batching_strategy".split()
)
# v1 part -> how tunelab reads it (the docs table shows this text); other v1 keys are flat keys
V1_PARTS: dict[str, str] = {
    "model": "model_name_or_path",
    "model_class": "llm: causal LM; cls: stage rm (a scalar-head reward model); others refused",
    "flash_attn": "flash_attn (eager -> disabled, sdpa, flash_attention_2 -> fa2)",
    "peft_config": "name lora -> finetuning_type: lora with r -> lora_rank, lora_alpha, lora_dropout, "
    "target_modules -> lora_target; name freeze -> finetuning_type: freeze with its freeze_* keys; null -> full",
    "quant_config": "name bnb/auto -> quantization_method: bnb, quantization_bit",
    "dist_config": "name deepspeed -> deepspeed: <config_file>; fsdp/fsdp2 -> fsdp + fsdp_config",
    "kernel_config": "name auto accepted (transformers' kernels); other kernels refused",
    "init_config": "refused (no initialisation plugins)",
    "train_dataset": "a v1 dataset YAML -> dataset: <its local files>, num_samples -> max_samples",
    "eval_dataset": "a v1 dataset YAML -> eval_dataset: <its local files>",
    "micro_batch_size": "per_device_train_batch_size",
    "global_batch_size": "gradient_accumulation_steps = global_batch_size / micro_batch_size (one process)",
    "sample_backend": "hf accepted (tunelab's engine); others refused",
    "batching_strategy": "normal accepted; others refused (packing / group_by_length instead)",
}
_V1_FLAT = {"micro_batch_size": "per_device_train_batch_size"}
_V1_PEFT = {
    "r": "lora_rank",
    "lora_alpha": "lora_alpha",
    "lora_dropout": "lora_dropout",
    "target_modules": "lora_target",
}
_V1_ATTN = {"eager": "disabled", "sdpa": "sdpa", "flash_attention_2": "fa2", "fa2": "fa2", "auto": "auto"}


@dataclass
class Translated:
    """Flat tunelab keys, where each came from, and the parts that could not be mapped."""

    values: dict[str, Any]
    origin: dict[str, str] = field(default_factory=dict)  # tunelab key -> the user's key it came from
    problems: list[tuple[str, str, str]] = field(default_factory=list)  # (user key, message, hint)

    def put(self, key: str, value: Any, origin: str) -> None:
        self.values[key] = value
        if origin != key:
            self.origin[key] = origin

    def refuse(self, key: str, message: str, hint: str = "") -> None:
        self.problems.append((key, message, hint))


def is_multimodal_template(name: object) -> bool:
    """Whether a LLaMA-Factory template name renders images, video or audio."""
    return isinstance(name, str) and any(mark in name.lower() for mark in MULTIMODAL_TEMPLATE_MARKS)


def is_v1_layout(values: dict[str, Any]) -> bool:
    """A v1 config names its model with ``model:`` (a string) or uses one of the v1-only parts."""
    return isinstance(values.get("model"), str) or any(key in values for key in V1_KEYS)


def translate(values: dict[str, Any], *, base_dir: Path | None = None) -> Translated:
    """Rewrite LLaMA-Factory spellings (flat and v1) into tunelab keys; unknown keys pass through."""
    out = Translated({})
    v1 = is_v1_layout(values)
    for key, value in values.items():
        if v1 and _translate_v1(out, key, value, values, base_dir):
            continue
        if key in _VALUE_ALIASES:
            out.put(key, _VALUE_ALIASES[key].get(value, value), key)
        elif key == "disable_gradient_checkpointing":
            out.put("gradient_checkpointing", not value, key)
        elif key == "neat_packing":
            if value:
                out.put("packing", True, key)
        elif key == "batch_size":
            out.put("per_device_eval_batch_size", value, key)
        elif key == "eval_num_beams":
            if value is not None:
                out.put("num_beams", value, key)
        elif key == "early_stopping_steps":
            if value is not None:
                metric = str(values.get("metric_for_best_model") or "eval_loss")
                metric = metric if metric.startswith("eval_") else f"eval_{metric}"
                stop = {"enabled": True, "patience": value, "metric": metric}
                out.put("early_stopping", {**stop, **_mapping(values.get("early_stopping"))}, key)
        elif key == "early_stopping" and "early_stopping" in out.values:
            out.values["early_stopping"] = {**out.values["early_stopping"], **_mapping(value)}
        else:
            out.put(key, value, key)
    if v1 and "peft_config" not in values and "finetuning_type" not in values:
        # v1 trains the whole model unless a peft_config names an adapter (its default is None)
        out.put("finetuning_type", "full", "model")
    return out


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _translate_v1(
    out: Translated, key: str, value: Any, values: dict[str, Any], base_dir: Path | None
) -> bool:
    """Map one v1 part into ``out``; False when ``key`` is an ordinary flat key."""
    if key == "model" and isinstance(value, str):
        out.put("model_name_or_path", value, key)
    elif key == "model_class":
        if value == "cls":  # a sequence-classification head: v1's reward model
            out.put("stage", values.get("stage", "rm"), key)
        elif value not in ("llm", None):
            out.refuse(
                key,
                f"model_class: {value} is a v1 model class tunelab does not train",
                "use model_class: llm",
            )
    elif key == "flash_attn" and value in _V1_ATTN:
        out.put(key, _V1_ATTN[value], key)
    elif key in _V1_FLAT:
        out.put(_V1_FLAT[key], value, key)
    elif key == "global_batch_size":
        micro = values.get("micro_batch_size", 1)
        if isinstance(value, int) and isinstance(micro, int) and micro > 0 and value % micro == 0:
            out.put("gradient_accumulation_steps", value // micro, key)
        else:
            out.refuse(key, f"global_batch_size={value} is not a multiple of micro_batch_size={micro}",
                       "make global_batch_size a multiple of micro_batch_size (one process)")  # fmt: skip
    elif key == "peft_config":
        _peft(out, value)
    elif key == "quant_config":
        _quant(out, value)
    elif key == "dist_config":
        _dist(out, value)
    elif key == "kernel_config":
        if isinstance(value, dict) and value.get("name") not in ("auto", None):
            out.refuse(key, f"kernel_config: {value.get('name')} selects fused kernels tunelab does not ship",
                       "remove kernel_config (tunelab uses transformers' kernels)")  # fmt: skip
    elif key == "init_config":
        if value is not None:
            out.refuse(key, "init_config (v1 model initialisation plugins) has no tunelab equivalent",
                       "remove it; model_name_or_path: tiny:<preset> builds a random model")  # fmt: skip
    elif key == "sample_backend":
        if value not in ("hf", "huggingface", None):
            out.refuse(key, f"sample_backend: {value}: tunelab generates with its own transformers engine",
                       "remove it or set sample_backend: hf")  # fmt: skip
    elif key == "batching_strategy":
        if value not in ("normal", None):
            out.refuse(key, f"batching_strategy: {value} has no tunelab equivalent",
                       "use packing: true or group_by_length: true to cut padding")  # fmt: skip
    elif (
        key in ("train_dataset", "eval_dataset")
        and isinstance(value, str)
        and value.endswith((".yaml", ".yml"))
    ):
        _dataset_file(out, key, value, base_dir)
    elif key == "train_dataset":
        out.put("dataset", value, key)
    else:
        return False
    return True


def _peft(out: Translated, spec: Any) -> None:
    if spec is None:
        out.put("finetuning_type", "full", "peft_config")
        return
    if not isinstance(spec, dict):
        out.refuse("peft_config", "peft_config must be a mapping with a name (lora or freeze)")
        return
    spec = dict(spec)
    name = spec.pop("name", None)
    if name not in ("lora", "freeze", "full"):
        out.refuse(
            "peft_config", f"peft_config name {name!r} cannot be mapped", "use name: lora or name: freeze"
        )
        return
    out.put("finetuning_type", name, "peft_config")
    for key, value in spec.items():
        if name == "lora" or key.startswith("freeze_"):
            out.put(_V1_PEFT.get(key, key), value, "peft_config")
        else:
            out.refuse("peft_config", f"peft_config.{key} has no tunelab equivalent for {name}")


def _quant(out: Translated, spec: Any) -> None:
    if spec is None:
        return
    if not isinstance(spec, dict) or spec.get("name") not in ("bnb", "auto"):
        name = spec.get("name") if isinstance(spec, dict) else spec
        out.refuse(
            "quant_config", f"quant_config {name!r} cannot be mapped", "use name: bnb with quantization_bit"
        )
        return
    for key, value in spec.items():
        if key == "name":
            out.put("quantization_method", "bnb", "quant_config")
        elif key == "quantization_bit":
            out.put(key, value, "quant_config")
        else:
            out.refuse("quant_config", f"quant_config.{key} has no tunelab equivalent")


def _dist(out: Translated, spec: Any) -> None:
    """dist_config -> HF-style flat keys deepspeed / fsdp / fsdp_config (validated as flat keys)."""
    if spec is None:
        return
    name = spec.get("name") if isinstance(spec, dict) else spec
    rest = {k: v for k, v in spec.items() if k != "name" and v is not None} if isinstance(spec, dict) else {}
    if name == "deepspeed":
        out.put("deepspeed", rest.pop("config_file", None), "dist_config")
    elif name in ("fsdp", "fsdp2"):
        out.put("fsdp", "full_shard auto_wrap", "dist_config")
        out.put("fsdp_config", {"version": 2 if name == "fsdp2" else 1}, "dist_config")
    else:
        out.refuse(
            "dist_config", f"dist_config name {name!r} cannot be mapped", "use name: deepspeed or fsdp2"
        )
        return
    for key in rest:
        out.refuse("dist_config", f"dist_config.{key} has no tunelab equivalent", f"remove dist_config.{key}")


def _dataset_file(out: Translated, key: str, path: str, base_dir: Path | None) -> None:
    """A v1 dataset file (name: {file_name, dataset_dir, converter, num_samples}) -> data file paths.

    Paths are read as LLaMA-Factory reads them (from the working directory), then next to the config.
    """
    target = "dataset" if key == "train_dataset" else "eval_dataset"
    where = _existing(Path(path), base_dir)
    if where is None:
        out.refuse(
            key, f"{key}: {path} does not exist", "point it at a v1 dataset YAML, or use dataset: <name>"
        )
        return
    spec = yaml.safe_load(where.read_text(encoding="utf-8")) or {}
    files, samples = [], set()
    for name, entry in spec.items() if isinstance(spec, dict) else ():
        if not isinstance(entry, dict) or "file_name" not in entry:
            out.refuse(
                key, f"{key}: entry {name!r} of {path} has no file_name", "tunelab reads local files only"
            )
            continue
        file = Path(entry.get("dataset_dir") or "") / entry["file_name"]
        found = _existing(file, base_dir) or _existing(file, where.parent)
        files.append(str(found or file))
        if entry.get("num_samples") is not None:
            samples.add(entry["num_samples"])
        if entry.get("converter") not in (None, "alpaca", "sharegpt", "pair"):
            out.refuse(key, f"{key}: converter {entry['converter']!r} of {name!r} is not known to tunelab",
                       "tunelab detects alpaca / sharegpt / pairwise records itself")  # fmt: skip
    if files:
        out.put(target, files, key)
    if len(samples) == 1:
        out.put("max_samples", samples.pop(), key)
    elif samples:
        out.refuse(
            key, f"{key}: num_samples differ per dataset ({sorted(samples)})", "tunelab has one max_samples"
        )


def _existing(path: Path, base_dir: Path | None) -> Path | None:
    """``path`` if it exists as given (working directory), else relative to ``base_dir``, else None."""
    if path.exists():
        return path
    if base_dir is not None and not path.is_absolute() and (base_dir / path).exists():
        return base_dir / path
    return None
