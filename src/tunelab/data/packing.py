"""Pack several tokenized samples into one sequence, without letting them see each other.

Packing removes padding waste on short data. Samples are placed by first-fit-decreasing (longest
first, each into the first sequence with room), which wastes little space. Each packed row carries
``position_ids`` that restart at 0 for every sample. In transformers 5 (``masking_utils``), when a
batch comes with ``position_ids`` but *no* ``attention_mask`` and *no* KV cache,
``find_packed_sequence_indices`` turns the restarts into a block-diagonal causal mask, so a token
attends only to earlier tokens of its own sample. This holds for eager, sdpa and flex attention with
any number of rows per batch; flash-attention 2/3 only isolate samples in a batch of *one* row (they
read ``cu_seqlens`` from the position ids only when batch size is 1), so the collator must flatten
the batch for them (``build_collator(..., flatten=True)``). On CPU, ``flash_attn: auto`` runs packed
rows through ``tunelab.model.packed_attention``, which computes only each sample's own causal block
(same layout, same result, less work). ``tests/data/test_packing.py`` checks the eager, sdpa and
per-sample claims: logits, loss and gradients of a sample run alone equal those of its slice in a
packed row.

The label of each sample's first token is set to -100: it would otherwise be "predicted" from the
last token of the previous sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from tunelab.errors import DataError

if TYPE_CHECKING:
    import datasets

__all__ = ["PACKING_MODES", "first_fit_decreasing", "pack_sequences", "packing_mode"]

IGNORE_INDEX = -100

# attention implementation -> how the collator must lay out packed samples for them to stay isolated.
PACKING_MODES: dict[str, str] = {
    "eager": "rows",
    "sdpa": "rows",
    "flex_attention": "rows",
    "tunelab_packed_sdpa": "rows",  # tunelab.model.packed_attention: sdpa per sample, same layout
    "flash_attention_2": "flatten",
    "flash_attention_3": "flatten",
}


def packing_mode(attn_implementation: str) -> str | None:
    """How packed batches must be laid out for ``attn_implementation``: 'rows', 'flatten', or None.

    None means the implementation is not known to isolate packed samples: turn packing off and use
    ``group_by_length`` instead, which also cuts padding without mixing samples.
    """
    return PACKING_MODES.get(attn_implementation)


def first_fit_decreasing(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Group item indices into bins of total length <= ``capacity`` (first-fit-decreasing).

    A max-segment-tree over bins' free space finds the first bin with room in O(log n) per item,
    so packing a million samples takes seconds, not hours.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    size = 1
    while size < max(1, len(lengths)):
        size *= 2
    free = [capacity] * (2 * size)  # leaves are bins (unopened ones have full capacity)
    bins: list[list[int]] = [[] for _ in range(size)]
    n_open = 0
    for index in order:
        need = lengths[index]
        if need > capacity:
            raise DataError(
                f"sample {index} has {need} tokens, more than the packing capacity {capacity}",
                "cut samples to cutoff_len before packing (tokenize_dataset does)",
            )
        node = 1
        while node < size:
            node = 2 * node if free[2 * node] >= need else 2 * node + 1
        leaf = node - size
        bins[leaf].append(index)
        n_open = max(n_open, leaf + 1)
        free[node] -= need
        node //= 2
        while node:
            free[node] = max(free[2 * node], free[2 * node + 1])
            node //= 2
    return bins[:n_open]


def pack_sequences(dataset: datasets.Dataset, cutoff_len: int) -> datasets.Dataset:
    """Pack tokenized rows (``input_ids``, ``labels``) into rows of at most ``cutoff_len`` tokens.

    Returns ``input_ids``, ``labels`` and ``position_ids`` (restarting at 0 per sample).
    """
    import datasets

    all_ids = list(dataset["input_ids"])
    all_labels = list(dataset["labels"])
    bins = first_fit_decreasing([len(ids) for ids in all_ids], cutoff_len)
    packed: dict[str, list[list[int]]] = {"input_ids": [], "labels": [], "position_ids": []}
    for members in bins:
        input_ids: list[int] = []
        labels: list[int] = []
        position_ids: list[int] = []
        for index in members:
            ids = list(all_ids[index])
            if not ids:
                continue
            input_ids += ids
            labels += [IGNORE_INDEX] + list(all_labels[index][1:])
            position_ids += range(len(ids))
        if not input_ids:
            continue
        packed["input_ids"].append(input_ids)
        packed["labels"].append(labels)
        packed["position_ids"].append(position_ids)
    return datasets.Dataset.from_dict(packed)
