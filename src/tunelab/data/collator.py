"""Batch tokenized rows into tensors: right padding for ordinary rows, position ids for packed rows.

Ordinary batches get ``input_ids`` (padded with the pad token), ``labels`` (padded with -100) and
``attention_mask``. Packed batches get ``input_ids``, ``labels``, ``position_ids`` and *no*
attention mask, plus ``use_cache=False``: transformers derives the per-sample causal mask from the
position ids only when there is neither a 2-D attention mask nor a KV cache, and models whose
config says ``use_cache: true`` (most) create a cache in every forward pass unless told not to, which
silently lets packed samples attend to each other (see :mod:`tunelab.data.packing`). Padding in a
packed row restarts its positions at 0, so it forms its own segment that no sample attends to.

torch is imported on first use, so importing this module stays cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tunelab.errors import ConfigError

__all__ = ["SupervisedCollator", "build_collator"]

IGNORE_INDEX = -100


@dataclass(frozen=True)
class SupervisedCollator:
    """Callable that turns a list of rows into a batch of tensors (see the module docstring)."""

    pad_token_id: int
    packing: bool = False
    pad_to_multiple_of: int | None = None
    flatten: bool = False  # packed: one row per batch (what flash-attention needs to isolate samples)

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, Any]:
        import torch

        rows = [self._row(f) for f in features]
        if self.packing and self.flatten:
            rows = [tuple([value for row in rows for value in row[part]] for part in range(3))]
        width = self._padded_width(max(len(ids) for ids, _, _ in rows))
        input_ids, labels, positions, mask = [], [], [], []
        for ids, row_labels, row_positions in rows:
            pad = width - len(ids)
            input_ids.append(list(ids) + [self.pad_token_id] * pad)
            labels.append(list(row_labels) + [IGNORE_INDEX] * pad)
            positions.append(list(row_positions) + list(range(pad)))
            mask.append([1] * len(ids) + [0] * pad)
        batch: dict[str, Any] = {
            "input_ids": torch.tensor(input_ids, dtype=torch.long),
            "labels": torch.tensor(labels, dtype=torch.long),
        }
        if self.packing:
            batch["position_ids"] = torch.tensor(positions, dtype=torch.long)
            batch["use_cache"] = False
        else:
            batch["attention_mask"] = torch.tensor(mask, dtype=torch.long)
        return batch

    def _row(self, feature: dict[str, Any]) -> tuple[list[int], list[int], list[int]]:
        ids = list(feature["input_ids"])
        labels = list(feature["labels"]) if "labels" in feature else list(ids)
        if not self.packing:
            return ids, labels, []
        positions = list(feature["position_ids"]) if "position_ids" in feature else list(range(len(ids)))
        # A token that starts a sample must not be a target: it would be predicted from another sample.
        labels = [IGNORE_INDEX if pos == 0 else label for pos, label in zip(positions, labels)]
        return ids, labels, positions

    def _padded_width(self, longest: int) -> int:
        multiple = self.pad_to_multiple_of
        if not multiple or multiple <= 1:
            return longest
        return -(-longest // multiple) * multiple


def build_collator(
    tokenizer: Any, *, packing: bool, pad_to_multiple_of: int | None = None, flatten: bool = False
) -> SupervisedCollator:
    """Return the training collator; pads with the tokenizer's pad token (its EOS when it has none).

    ``flatten`` (packed batches only) joins the whole batch into one row, which flash-attention 2/3
    need to keep packed samples apart; eager and sdpa isolate them in ordinary rows.
    """
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad_id is None:
        raise ConfigError(
            "the tokenizer has neither a pad token nor an EOS token, so batches cannot be padded",
            "use a tokenizer that defines pad_token or eos_token (tokenizer_config.json)",
        )
    return SupervisedCollator(
        pad_token_id=pad_id,
        packing=packing,
        pad_to_multiple_of=pad_to_multiple_of,
        flatten=flatten and packing,
    )
