"""A batch of sequences decoding together, to which rows can be added and from which rows can leave
between two decoding steps (the tensor half of continuous batching; infer/scheduler.py drives it).

Rows are left-padded to a common length. Each row carries its own attention mask (0 over padding)
and its own position counter (positions count only the row's real tokens), so a row's logits are
those it would get alone: a greedy reply is the one the row would get from a batch of one.

State between steps: the KV cache holds every token of each row except its `pending` one, the
token chosen last, which the next `step()` feeds.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

__all__ = ["DecodeBatch"]


class DecodeBatch:
    """Left-padded rows sharing one KV cache. See the module docstring."""

    def __init__(self, model: Any, pad_id: int) -> None:
        self.model = model
        self.pad_id = pad_id
        self.device = next(model.parameters()).device
        self.cache: Any = None
        self.mask: Any = None  # [rows, cached length], 1 for real tokens
        self.positions: Any = None  # [rows], the position of each row's pending token
        self.pending: Any = None  # [rows], the token each row feeds at the next step
        # transformers renamed past_key_values to cache during 5.x (the old name warns until 5.40)
        params = inspect.signature(model.forward).parameters
        self._cache_arg = "cache" if "cache" in params else "past_key_values"

    def __len__(self) -> int:
        return 0 if self.mask is None else int(self.mask.shape[0])

    def prefill(self, prompts: Sequence[Sequence[int]]) -> Any:
        """Run new prompts through the model; returns their next-token logits [n, vocab] (float).

        The rows join the batch once `admit()` gives them their first token."""
        import torch
        from transformers import DynamicCache

        width = max(len(p) for p in prompts)
        ids = torch.tensor([[self.pad_id] * (width - len(p)) + list(p) for p in prompts], device=self.device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache()
        with torch.inference_mode():
            out = self.model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=positions,
                **{self._cache_arg: cache},
                use_cache=True,
                logits_to_keep=1,
            )
        self._staged = (cache, mask, mask.sum(-1))
        return out.logits[:, -1, :].float()

    def admit(self, first_tokens: Sequence[int], keep: Sequence[int]) -> None:
        """Add the rows `keep` (indices into the last prefill) with their first generated tokens."""
        import torch

        cache, mask, positions = self._staged
        del self._staged
        if not keep:
            return
        index = torch.tensor(list(keep), device=self.device)
        pending = torch.tensor([first_tokens[i] for i in keep], device=self.device)
        if len(keep) < mask.shape[0]:
            cache.batch_select_indices(index)
            mask, positions = mask[index], positions[index]
        if self.mask is None:
            self.cache, self.mask, self.positions, self.pending = cache, mask, positions, pending
            return
        width = max(self.mask.shape[1], mask.shape[1])
        self.mask = torch.cat([_pad_left(self.mask, width), _pad_left(mask, width)])
        for mine, theirs in zip(_layers(self.cache), _layers(cache)):
            mine.keys = torch.cat(
                [_pad_left(mine.keys, width, dim=-2), _pad_left(theirs.keys, width, dim=-2)]
            )
            mine.values = torch.cat(
                [_pad_left(mine.values, width, dim=-2), _pad_left(theirs.values, width, dim=-2)]
            )
        self.positions = torch.cat([self.positions, positions])
        self.pending = torch.cat([self.pending, pending])

    def step(self) -> Any:
        """Feed every row's pending token; returns the next-token logits [rows, vocab] (float)."""
        import torch

        self.mask = torch.cat([self.mask, self.mask.new_ones((len(self), 1))], dim=1)
        with torch.inference_mode():
            out = self.model(
                input_ids=self.pending[:, None],
                attention_mask=self.mask,
                position_ids=self.positions[:, None],
                **{self._cache_arg: self.cache},
                use_cache=True,
            )
        self.positions = self.positions + 1
        return out.logits[:, -1, :].float()

    def set_pending(self, tokens: Sequence[int]) -> None:
        import torch

        self.pending = torch.tensor(list(tokens), device=self.device)

    def keep(self, rows: Sequence[int]) -> None:
        """Keep only `rows` (in this order); padding columns no row needs any more are dropped."""
        import torch

        if not rows:
            self.cache = self.mask = self.positions = self.pending = None
            return
        if len(rows) == len(self):
            return
        index = torch.tensor(list(rows), device=self.device)
        self.cache.batch_select_indices(index)
        self.mask, self.positions, self.pending = self.mask[index], self.positions[index], self.pending[index]
        unused = int((self.mask.sum(0) == 0).long().cumprod(0).sum())  # leading all-padding columns
        if unused:
            self.mask = self.mask[:, unused:]
            for layer in _layers(self.cache):
                layer.keys, layer.values = layer.keys[..., unused:, :], layer.values[..., unused:, :]


def _layers(cache: Any) -> list[Any]:
    return list(cache.layers)


def _pad_left(tensor: Any, width: int, *, dim: int = 1) -> Any:
    import torch

    missing = width - tensor.shape[dim]
    if missing == 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = missing
    return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)
