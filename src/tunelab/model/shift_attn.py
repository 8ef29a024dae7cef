"""LongLoRA's shifted sparse attention (S²-Attn, ``shift_attn: true``) as a registered attention function.

S²-Attn (Chen et al., 2024) trains long contexts cheaply: during training, each sequence is cut into
4 groups (group size = a quarter of the length, LongLoRA's and LLaMA-Factory's ratio) and attention
stays inside a group; half of the heads see the groups shifted by half a group, so information still
flows between neighbouring groups. At inference the model uses full attention, unchanged.

transformers 5 selects attention through its public ``AttentionInterface`` / ``AttentionMaskInterface``
registries, so this needs no patch of model code: the function is registered under its own name and
the model is switched to it. It builds on transformers' SDPA function; in evaluation mode it *is* that
function. As in LongLoRA's code (and LLaMA-Factory's), the shifted heads' roll wraps: the first
half-group of a sequence lands in the last shifted group, after its last half-group, and attends to
it; padding inside a group is not masked (padded positions carry no labels).
"""

from __future__ import annotations

from typing import Any

from tunelab.errors import ModelError

__all__ = ["N_GROUPS", "S2_ATTENTION", "enable_shift_attn", "s2_attention_forward"]

S2_ATTENTION = "tunelab_s2_sdpa"
N_GROUPS = 4  # group size = sequence length / 4 (LongLoRA's group_size_ratio 1/4)


def s2_attention_forward(
    module: Any, query: Any, key: Any, value: Any, attention_mask: Any, **kwargs: Any
) -> tuple[Any, None]:
    """SDPA attention; in training, S²-Attn over 4 groups with half of the heads shifted by half a group."""
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    batch, n_heads, length, dim = query.shape
    if not module.training or length < 2 * N_GROUPS:
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    n_kv = key.shape[1]
    if length % N_GROUPS or n_heads % 2 or n_kv % 2:
        raise ModelError(
            f"shift_attn needs an even number of attention heads and sequences padded to a multiple of "
            f"{N_GROUPS} (got {n_heads} heads, {n_kv} key/value heads, length {length})",
            "remove shift_attn for this model",
        )
    group = length // N_GROUPS

    def shift(
        tensor: Any, heads: int, sign: int
    ) -> Any:  # roll the second half of the heads along the sequence
        half = heads // 2
        return torch.cat([tensor[:, :half], tensor[:, half:].roll(sign * (group // 2), dims=2)], dim=1)

    def grouped(tensor: Any, heads: int) -> Any:  # [b, h, s, d] -> [b * groups, h, group, d]
        tensor = shift(tensor, heads, -1)
        return (
            tensor.reshape(batch, heads, N_GROUPS, group, dim).transpose(1, 2).reshape(-1, heads, group, dim)
        )

    out, _ = sdpa_attention_forward(
        module,
        grouped(query, n_heads),
        grouped(key, n_kv),
        grouped(value, n_kv),
        None,  # causal inside each group
        **{**kwargs, "is_causal": True},
    )
    # out: [b * groups, group, h, d] -> [b, h, s, d], shift back, -> [b, s, h, d] as SDPA returns
    out = (
        out.reshape(batch, N_GROUPS, group, n_heads, dim)
        .permute(0, 3, 1, 2, 4)
        .reshape(batch, n_heads, length, dim)
    )
    return shift(out, n_heads, 1).transpose(1, 2).contiguous(), None


def enable_shift_attn(model: Any) -> None:
    """Register S²-Attn with transformers' attention registries and switch ``model`` to it."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(S2_ATTENTION, s2_attention_forward)
    ALL_MASK_ATTENTION_FUNCTIONS.register(S2_ATTENTION, sdpa_mask)
    model.set_attn_implementation(S2_ATTENTION)
