"""OFT (``finetuning_type: oft``): PEFT's orthogonal fine-tuning, with LLaMA-Factory's oft_* keys.

OFT (Qiu et al., 2023; PEFT's OFTConfig) learns a block-diagonal orthogonal rotation of each target
layer's input, so the weights' pairwise angles (their "hyperspherical energy") are preserved. The
adapter is a PEFT adapter like LoRA: it is saved, reloaded, stacked and merged by `tunelab export`
through the same PEFT calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from tunelab.errors import ConfigError

if TYPE_CHECKING:
    import torch

    from tunelab.config.schema import FinetuningArgs

__all__ = ["build_oft_model"]


def build_oft_model(
    model: torch.nn.Module,
    args: FinetuningArgs,
    *,
    task_type: str = "CAUSAL_LM",
    head_modules: Sequence[str] = (),
    targets: list[str],
    modules_to_save: list[str] | None,
) -> torch.nn.Module:
    """``model`` wrapped in a trainable PEFT OFT adapter on ``targets`` (checked names of linear layers)."""
    from peft import OFTConfig, get_peft_model

    saved = [*(modules_to_save or []), *head_modules] or None
    config = OFTConfig(
        task_type=task_type,
        r=args.oft_rank,
        oft_block_size=args.oft_block_size,
        module_dropout=args.module_dropout,
        target_modules=targets,
        modules_to_save=saved,
    )
    try:
        return get_peft_model(model, config, autocast_adapter_dtype=not args.pure_bf16)
    except ValueError as err:  # e.g. no valid block size for a layer (PEFT adjusts what it can)
        raise ConfigError(
            f"finetuning_type: oft cannot be applied to this model: {err}",
            "choose oft_block_size (or oft_rank) dividing every target layer's input size, "
            "or narrow oft_target",
        ) from err
