"""The `deepspeed`, `fsdp` and `fsdp_config` keys: presets, paths and the checks made when a config is built.

Values mean what they mean in HF TrainingArguments (and LLaMA-Factory): ``deepspeed`` is a path to
a DeepSpeed JSON config, or here also the name of a preset shipped with tunelab (its "auto" values
are filled by transformers' DeepSpeed integration from the run's own settings); ``fsdp`` switches
on PyTorch FSDP and ``fsdp_config`` tunes it (a mapping or a JSON path). Pure: no torch, no deepspeed.
"""

from __future__ import annotations

import difflib
import json
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = [
    "DEEPSPEED_PRESETS",
    "FSDP_CONFIG_KEYS",
    "FSDP_OPTIONS",
    "check_deepspeed",
    "check_fsdp",
    "deepspeed_preset_path",
    "load_deepspeed_config",
    "offload_flags",
    "offload_note",
    "shards_parameters",
    "zero_stage",
]

# name -> (English, Chinese) one-line description; the JSON files are resources/deepspeed/<name>.json
DEEPSPEED_PRESETS: dict[str, tuple[str, str]] = {
    "z0": (
        "ZeRO stage 0: plain data parallelism through DeepSpeed",
        "ZeRO 阶段 0：通过 DeepSpeed 做普通数据并行",
    ),
    "z2": (
        "ZeRO-2: optimizer states and gradients partitioned across devices",
        "ZeRO-2：优化器状态和梯度在各设备间切分",
    ),
    "z2_offload": (
        "ZeRO-2 with the optimizer states moved to CPU RAM (DeepSpeed's CPU Adam)",
        "ZeRO-2，优化器状态移到 CPU 内存（DeepSpeed 的 CPU Adam）",
    ),
    "z3": (
        "ZeRO-3: parameters, gradients and optimizer states partitioned; 16-bit weights gathered on save",
        "ZeRO-3：参数、梯度和优化器状态全部切分；保存时汇集 16 位权重",
    ),
    "z3_offload": (
        "ZeRO-3 with parameters and optimizer states moved to CPU RAM",
        "ZeRO-3，参数和优化器状态移到 CPU 内存",
    ),
}

# FSDP options TrainingArguments accepts in its (legacy) string/list form of `fsdp`
FSDP_OPTIONS = (
    "full_shard",
    "shard_grad_op",
    "hybrid_shard",
    "hybrid_shard_zero2",
    "no_shard",
    "offload",
    "auto_wrap",
)
# fsdp_config keys transformers reads (with or without the fsdp_ prefix accelerate's YAML uses)
FSDP_CONFIG_KEYS = (
    "version",
    "min_num_params",
    "transformer_layer_cls_to_wrap",
    "auto_wrap_policy",
    "cpu_offload",
    "cpu_ram_efficient_loading",
    "state_dict_type",
    "activation_checkpointing",
    "reshard_after_forward",
    "forward_prefetch",
    "backward_prefetch",
    "use_orig_params",
    "sync_module_states",
    "limit_all_gathers",
    "xla",
    "xla_fsdp_v2",
    "xla_fsdp_grad_ckpt",
    "xla_fsdp_settings",
)
_STATE_DICT_TYPES = ("FULL_STATE_DICT", "SHARDED_STATE_DICT")


def deepspeed_preset_path(name: str) -> Path:
    """The shipped JSON file of preset ``name`` (one of DEEPSPEED_PRESETS)."""
    return Path(str(resources.files("tunelab") / "resources" / "deepspeed" / f"{name}.json"))


def _did_you_mean(value: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(value, choices, n=1, cutoff=0.5)
    return f"did you mean {close[0]!r}? " if close else ""


def load_deepspeed_config(value: str) -> dict[str, Any]:
    """The DeepSpeed config a ``deepspeed:`` value names (a preset or a JSON file); ValueError if unusable."""
    if value in DEEPSPEED_PRESETS:
        path = deepspeed_preset_path(value)
    else:
        path = Path(value).expanduser()
        if not path.suffix and not path.exists():
            raise ValueError(
                f"deepspeed={value!r} is neither a preset nor a file; {_did_you_mean(value, list(DEEPSPEED_PRESETS))}"
                f"presets: {', '.join(DEEPSPEED_PRESETS)}, or the path of a DeepSpeed JSON config"
            )
        if not path.is_file():
            raise ValueError(
                f"deepspeed={value!r}: no such file; give the path of a DeepSpeed JSON config "
                f"or a preset ({', '.join(DEEPSPEED_PRESETS)})"
            )
    return _read_json_object(path, f"deepspeed={value!r}")


def _read_json_object(path: Path, what: str) -> dict[str, Any]:
    """The JSON object in ``path``; ValueError naming ``what`` (the config key) when it is not one."""
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{what}: {path} is not readable JSON ({err})") from None
    if not isinstance(loaded, dict):
        raise ValueError(f"{what}: {path} must hold a JSON object, got {type(loaded).__name__}")
    return loaded


def zero_stage(ds_config: dict[str, Any]) -> int:
    """The ZeRO stage of a DeepSpeed config (0 when it has no zero_optimization section)."""
    return int((ds_config.get("zero_optimization") or {}).get("stage", 0))


def offload_flags(ds_config: dict[str, Any]) -> tuple[bool, bool]:
    """(optimizer states offloaded, parameters offloaded) to CPU or NVMe."""
    zero = ds_config.get("zero_optimization") or {}

    def moved(section: str) -> bool:
        device = (zero.get(section) or {}).get("device", "none")
        return device not in ("none", None)

    return moved("offload_optimizer"), moved("offload_param")


def offload_note(ds_config: dict[str, Any]) -> tuple[str, str] | None:
    """(English, Chinese) note of the memory an offloading config moves off the device, or None."""
    optimizer, params = offload_flags(ds_config)
    if not (optimizer or params):
        return None
    moved = "the fp32 master weights and Adam moments (12 bytes per parameter)"
    moved_zh = "fp32 主权重和 Adam 动量（每参数 12 字节）"
    if params:
        moved += " and the 16-bit parameters (2 bytes per parameter)"
        moved_zh += "以及 16 位参数（每参数 2 字节）"
    return (
        f"DeepSpeed offload moves {moved} from the device to CPU RAM, partitioned across the ranks of a "
        "node: every machine needs that RAM free, and each step pays the transfer",
        f"DeepSpeed 卸载会把{moved_zh}从设备移到 CPU 内存（按节点内各进程切分）：每台机器都需有这些空闲内存，每步都有传输开销",
    )


def check_deepspeed(value: str, *, optim: str) -> None:
    """ValueError when ``deepspeed:`` names no usable config, or one this run cannot use."""
    ds = load_deepspeed_config(value)
    stage = zero_stage(ds)
    if stage not in (0, 1, 2, 3):
        raise ValueError(
            f"deepspeed={value!r}: zero_optimization.stage={stage}; DeepSpeed ZeRO has stages 0-3"
        )
    if "optimizer" in ds and not optim.startswith("adamw"):
        raise ValueError(
            f"deepspeed={value!r} brings its own optimizer ({ds['optimizer'].get('type')}), so optim={optim} would "
            "be ignored; use optim: adamw_torch, or a DeepSpeed config without an optimizer section"
        )


def shards_parameters(deepspeed: str | None, fsdp: bool | str | None) -> bool:
    """Whether the engine partitions the parameters themselves (FSDP, ZeRO-3): no rank holds the whole model."""
    if fsdp:
        return True
    return bool(deepspeed) and zero_stage(load_deepspeed_config(deepspeed)) == 3


def _load_fsdp_config(value: dict[str, Any] | str | None) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, dict):
        return dict(value)
    return _read_json_object(Path(value).expanduser(), f"fsdp_config={value!r}")


def check_fsdp(fsdp: bool | str | None, fsdp_config: dict[str, Any] | str | None) -> None:
    """ValueError for FSDP options or fsdp_config keys transformers does not know (with a suggestion)."""
    if isinstance(fsdp, str):
        for option in fsdp.split():
            if option not in FSDP_OPTIONS:
                raise ValueError(
                    f"fsdp={fsdp!r}: unknown option {option!r}; {_did_you_mean(option, list(FSDP_OPTIONS))}"
                    f"options: {', '.join(FSDP_OPTIONS)} (or fsdp: true with fsdp_config)"
                )
    config = _load_fsdp_config(fsdp_config)
    if config and not fsdp:
        raise ValueError(
            "fsdp_config is set but fsdp is not: set fsdp: true (or e.g. fsdp: full_shard auto_wrap)"
        )
    for key in config:
        name = key.removeprefix("fsdp_")
        if name not in FSDP_CONFIG_KEYS:
            raise ValueError(
                f"fsdp_config.{key} is not an FSDP setting transformers reads; "
                f"{_did_you_mean(name, list(FSDP_CONFIG_KEYS))}known: {', '.join(FSDP_CONFIG_KEYS)}"
            )
    version = int(config.get("version", config.get("fsdp_version", 2)))
    if version not in (1, 2):
        raise ValueError(
            f"fsdp_config.version={version}: FSDP has versions 1 and 2 (2 is FSDP2, the default)"
        )
    state = config.get("state_dict_type", config.get("fsdp_state_dict_type", "FULL_STATE_DICT"))
    if str(state).upper() not in _STATE_DICT_TYPES:
        raise ValueError(
            f"fsdp_config.state_dict_type={state!r}; use FULL_STATE_DICT (normal weights in the run directory) "
            "or SHARDED_STATE_DICT"
        )
    if (
        version == 2
        and isinstance(fsdp, str)
        and {"hybrid_shard", "hybrid_shard_zero2", "no_shard"} & set(fsdp.split())
    ):
        raise ValueError(
            f"fsdp={fsdp!r} is an FSDP1 strategy; with FSDP2 (the default) use full_shard or shard_grad_op, "
            "or set fsdp_config.version: 1"
        )
