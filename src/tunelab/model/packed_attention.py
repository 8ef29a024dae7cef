"""Per-sample attention for packed rows on CPU: each sample attends within its own block only.

A packed row of 512 tokens holding ten samples of ~50 tokens needs ten 50 x 50 causal blocks, yet
sdpa with transformers' block-diagonal mask computes (and differentiates) the full 512 x 512 tile:
about ten times the attention work, which made attention the largest share of a bf16 LoRA step on
CPU (docs/benchmarks.md, issue 15). flash-attention's varlen kernel solves this on CUDA; here the
same segments (``position_ids`` restarting, transformers' own packed-sequence rule) are cut out and
run through sdpa with ``is_causal`` and no mask. Segments of similar length share one sdpa call:
each is padded at its *end* to the longest in its bucket, and because attention is causal no real
token ever sees that padding, so the result is exact; the padded outputs are simply not gathered.
A forward pass costs one gather of q, k and v, a few sdpa calls and one gather of the output per
layer, and the plan is built once per forward pass (every layer gets the same position ids).

It is registered through transformers' public ``AttentionInterface`` (mask: transformers' sdpa
mask), like :mod:`tunelab.model.shift_attn`. The block path is taken only when the mask
transformers built is exactly the block-diagonal causal mask of those segments (checked once per
forward pass); any other batch (unpacked, padded, a KV cache, sliding windows, soft-capping) runs
transformers' sdpa function unchanged, so the two always give the same result.

On CPU the blocks run in fp32 (also under bf16 autocast, which is paused around the kernel): torch
2.13's bf16 CPU flash kernel costs about as much for short blocks as for a whole row. The plan of the
latest forward pass is kept in this module (with its position ids and mask) until the next one.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

__all__ = ["PACKED_SDPA", "SegmentPlan", "enable_packed_sdpa", "packed_sdpa_forward", "plan_segments"]

PACKED_SDPA = "tunelab_packed_sdpa"
BUCKET = 32  # segments whose lengths round up to the same multiple of 32 share one sdpa call
_UNSUPPORTED = ("sliding_window", "softcap", "s_aux", "position_bias")  # kwargs the plain path handles
_last: list[Any] = [None, None, None]  # position_ids, mask, plan of the latest forward pass


@dataclass(frozen=True)
class SegmentPlan:
    """Where each segment's tokens go: one gather into padded buckets, one gather back."""

    gather: Any  # [sum n_b * L_b] token indices (row * length + column) laid out bucket by bucket
    shapes: tuple[tuple[int, int], ...]  # (n_segments, padded length) of each bucket
    scatter: Any  # [batch * length] where each token's output sits in the padded layout
    lengths: tuple[int, ...]  # segment lengths, in row order (for tests and statistics)


def _segment_starts(position_ids: Any, batch: int) -> Any:
    """[batch, length] bool: True where a segment starts (a position that is not its predecessor + 1)."""
    import torch

    positions = position_ids.expand(batch, -1)
    starts = torch.ones_like(positions, dtype=torch.bool)
    starts[:, 1:] = positions[:, 1:] - positions[:, :-1] != 1
    return starts


def plan_segments(position_ids: Any, batch: int, *, bucket: int = BUCKET) -> SegmentPlan | None:
    """The packing plan of ``position_ids`` [batch or 1, length], or None when no row holds two segments.

    A segment starts wherever a position is not its predecessor + 1 (transformers'
    ``find_packed_sequence_indices`` rule), so a padding run that restarts at 0 is a segment too.
    """
    starts = _segment_starts(position_ids, batch)
    length = starts.shape[1]
    rows, cols = (t.tolist() for t in starts.nonzero(as_tuple=True))
    if len(rows) == batch:
        return None
    segments = []  # (global offset of the first token, length)
    for i, (row, col) in enumerate(zip(rows, cols)):
        end = cols[i + 1] if i + 1 < len(rows) and rows[i + 1] == row else length
        segments.append((row * length + col, end - col))
    buckets: dict[int, list[tuple[int, int]]] = {}
    for offset, size in segments:
        buckets.setdefault(-(-size // bucket), []).append((offset, size))
    gather: list[int] = []
    scatter = [0] * (batch * length)
    shapes = []
    for key in sorted(buckets):
        members = buckets[key]
        padded = max(size for _, size in members)
        for offset, size in members:
            base = len(gather)
            scatter[offset : offset + size] = range(base, base + size)
            last = offset + size - 1  # padding repeats the last token: never attended, output dropped
            gather.extend(range(offset, offset + size))
            gather.extend([last] * (padded - size))
        shapes.append((len(members), padded))
    import torch

    device = position_ids.device
    return SegmentPlan(
        gather=torch.tensor(gather, dtype=torch.long, device=device),
        shapes=tuple(shapes),
        scatter=torch.tensor(scatter, dtype=torch.long, device=device),
        lengths=tuple(size for _, size in segments),
    )


def _is_block_causal(mask: Any, position_ids: Any, batch: int) -> bool:
    """Whether ``mask`` [b, 1, s, s] is exactly the causal mask restricted to each segment."""
    import torch

    segment = _segment_starts(position_ids, batch).cumsum(-1)
    length = segment.shape[1]
    causal = torch.ones(length, length, dtype=torch.bool, device=mask.device).tril()
    expected = (segment[:, :, None] == segment[:, None, :]) & causal
    return bool(torch.equal(mask.expand(batch, 1, length, length)[:, 0], expected))


def _plan_for(position_ids: Any, mask: Any, batch: int, length: int) -> SegmentPlan | None:
    """The plan for this forward pass, computed at its first layer and reused by the others."""
    if _last[0] is position_ids and _last[1] is mask:
        return _last[2]
    import torch

    plan = None
    usable = (
        getattr(position_ids, "ndim", 0) == 2
        and position_ids.shape[-1] == length
        and getattr(mask, "ndim", 0) == 4
        and mask.dtype == torch.bool
        and mask.shape[-2:] == (length, length)
    )
    if usable:
        plan = plan_segments(position_ids, batch, bucket=BUCKET)
        if plan is not None and not _is_block_causal(mask, position_ids, batch):
            plan = None
    _last[:] = [position_ids, mask, plan]
    return plan


def packed_sdpa_forward(
    module: Any, query: Any, key: Any, value: Any, attention_mask: Any, **kwargs: Any
) -> tuple[Any, None]:
    """transformers' sdpa attention; for packed rows, per segment with ``is_causal`` and no mask."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    batch, n_heads, length, dim = query.shape
    plan = None
    if (
        key.shape[2] == length
        and getattr(module, "is_causal", True)
        and all(kwargs.get(name) is None for name in _UNSUPPORTED)
    ):
        plan = _plan_for(kwargs.get("position_ids"), attention_mask, batch, length)
    if plan is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)

    import torch

    def tokens(tensor: Any) -> Any:  # [b, h, s, d] -> [b * s, h, d] (a view for rotary's layout)
        return tensor.transpose(1, 2).reshape(batch * length, tensor.shape[1], tensor.shape[3])

    # torch 2.13's CPU flash kernel takes about as long for short bf16/fp16 segments as for a whole
    # 512-token row, while its fp32 kernel scales with the work (docs/benchmarks.md): small blocks run
    # in fp32, which is also the more exact of the two, and the output is cast back. Autocast (bf16=True)
    # is paused around the kernel, or it would cast the blocks straight back to bf16.
    on_cpu = query.device.type == "cpu"
    out_dtype = query.dtype
    if on_cpu and torch.is_autocast_enabled("cpu"):  # what autocast's sdpa would have returned
        out_dtype = torch.get_autocast_dtype("cpu")
    sizes = [n * padded for n, padded in plan.shapes]
    parts = []
    for tensor in (query, key, value):
        gathered = tokens(tensor).index_select(0, plan.gather)
        parts.append((gathered.float() if on_cpu else gathered).split(sizes))
    outputs = []
    for (n, padded), q, k, v in zip(plan.shapes, *parts):
        # [n * L, h, d] -> [n, h, L, d]; sdpa returns [n, L, h, d]
        q, k, v = (t.view(n, padded, t.shape[1], dim).transpose(1, 2) for t in (q, k, v))
        with torch.autocast("cpu", enabled=False) if on_cpu else contextlib.nullcontext():
            out, _ = sdpa_attention_forward(module, q, k, v, None, **{**kwargs, "is_causal": True})
        outputs.append(out.reshape(n * padded, n_heads, dim))
    out = torch.cat(outputs).index_select(0, plan.scatter).to(out_dtype)
    return out.view(batch, length, n_heads, dim), None


def enable_packed_sdpa(model: Any) -> None:
    """Register per-sample sdpa with transformers' attention registries and switch ``model`` to it."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(PACKED_SDPA, packed_sdpa_forward)
    ALL_MASK_ATTENTION_FUNCTIONS.register(PACKED_SDPA, sdpa_mask)
    model.set_attn_implementation(PACKED_SDPA)
