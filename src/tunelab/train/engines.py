"""DeepSpeed and FSDP as TrainingArguments see them: the keyword arguments, and what must be installed.

Both engines are HF's own integrations (transformers + accelerate); tunelab only resolves a preset
name to its shipped JSON file, checks that the engine can run here, and hands the values on. The
config was validated when it was built (`tunelab.config.engines`); this module adds the checks that
need the machine: is deepspeed importable, is there a device it can use.
"""

from __future__ import annotations

import importlib.util
import os
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from tunelab.config.engines import DEEPSPEED_PRESETS, deepspeed_preset_path
from tunelab.distributed import is_launched, world_size
from tunelab.errors import ConfigError, ResourceError

if TYPE_CHECKING:
    from tunelab.config.schema_train import TrainingArgs

__all__ = ["check_deepspeed_installed", "deepspeed_json_path", "engine_arguments", "engine_compute_type"]

_DEEPSPEED_HINT = (
    "`pip install deepspeed` (or `pip install 'tunelab[deepspeed]'`), or shard with PyTorch FSDP instead "
    "(fsdp: true, no extra package), or drop deepspeed and train data-parallel with --nproc-per-node N"
)


def deepspeed_json_path(value: str) -> str:
    """The JSON file a ``deepspeed:`` value names: the shipped preset's file, or the user's path."""
    return str(deepspeed_preset_path(value)) if value in DEEPSPEED_PRESETS else value


def check_deepspeed_installed() -> None:
    """ResourceError naming what is missing when DeepSpeed cannot run here."""
    if importlib.util.find_spec("deepspeed") is None:
        raise ResourceError(
            "deepspeed is set but the deepspeed package is not installed",
            _DEEPSPEED_HINT,
            code="deepspeed_not_installed",
        )
    try:
        from deepspeed.accelerator import get_accelerator

        accelerator = get_accelerator()
    except (ImportError, RuntimeError, ValueError) as err:
        raise ResourceError(f"deepspeed is installed but cannot start here: {err}", _DEEPSPEED_HINT) from err
    if accelerator.device_name() not in ("cuda", "cpu"):
        raise ResourceError(
            f"DeepSpeed picked the {accelerator.device_name()!r} accelerator, which tunelab does not train on",
            "set DS_ACCELERATOR=cuda (NVIDIA GPU) or DS_ACCELERATOR=cpu",
        )


def engine_compute_type(compute_type: str, *, deepspeed: str | None) -> str:
    """``compute_type`` with ``auto`` settled to fp32 for DeepSpeed without CUDA (the only precision it runs in).

    Otherwise ``auto`` may measure bf16 as the faster CPU precision and the run would then be refused.
    """
    if compute_type != "auto" or not deepspeed:
        return compute_type
    import torch

    return compute_type if torch.cuda.is_available() else "fp32"


def engine_arguments(training: TrainingArgs, *, use_cuda: bool, half_precision: bool) -> dict[str, Any]:
    """TrainingArguments keywords of the configured engine (empty for plain DDP / one process).

    DeepSpeed replaces the Trainer's device handling, so ``use_cpu`` must be off for it: on a machine
    without CUDA, DeepSpeed's own CPU accelerator runs the steps (communication over gloo).
    """
    if training.deepspeed:
        check_deepspeed_installed()
        kwargs: dict[str, Any] = {"deepspeed": deepspeed_json_path(training.deepspeed), "use_cpu": False}
        if not use_cuda:
            kwargs.update(_deepspeed_on_cpu(training, half_precision=half_precision))
        return kwargs
    if training.fsdp:
        if world_size() < 2:  # transformers refuses FSDP in one process with a bare ValueError
            raise ConfigError(
                "fsdp shards the model across processes, but this run has one process",
                "launch several: tunelab train CFG --nproc-per-node N (N >= 2, one per GPU; gloo on a CPU), "
                "or remove fsdp (dist_config in a v1 config) to train in one process",
            )
        fsdp_config = training.fsdp_config
        if isinstance(fsdp_config, dict):
            fsdp_config = dict(fsdp_config)  # TrainingArguments edits it in place
        return {"fsdp": training.fsdp, "fsdp_config": fsdp_config, "use_cpu": not use_cuda}
    return {}


def _deepspeed_on_cpu(training: TrainingArgs, *, half_precision: bool) -> dict[str, Any]:
    """Start the accelerate state DeepSpeed's CPU accelerator needs, and tell TrainingArguments to use it.

    accelerate (1.15) picks a process-group backend for DeepSpeed only on GPUs-like devices; on a CPU it
    leaves the backend unset and counts one process, although DeepSpeed joined all of them over gloo.
    Creating the PartialState ourselves with backend gloo (as transformers does, with
    ACCELERATE_USE_DEEPSPEED set while it starts) and passing ``use_configured_state`` is accelerate's
    public way to supply that state.
    """
    if half_precision:
        raise ConfigError(
            "DeepSpeed on a CPU trains in fp32 only (transformers refuses bf16/fp16 without a GPU there)",
            "for a DeepSpeed run on this machine set bf16=false / fp16=false (the keys LLaMA-Factory and HF "
            "configs carry; compute_type: fp32 where neither is set), or train on a GPU",
        )
    if not is_launched():
        raise ConfigError(
            "DeepSpeed on a CPU needs a launcher that starts every rank (this process was started without one)",
            "run `tunelab train CFG --nproc-per-node 2` (or `torchrun --nproc-per-node 2 -m tunelab train CFG`)",
        )
    from accelerate import PartialState

    os.environ["ACCELERATE_USE_DEEPSPEED"] = "true"
    try:
        PartialState(backend="gloo", timeout=timedelta(seconds=training.ddp_timeout))
    finally:
        del os.environ["ACCELERATE_USE_DEEPSPEED"]
    return {"accelerator_config": {"use_configured_state": True}}
