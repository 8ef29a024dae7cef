"""Records -> token ids + labels: prompt masking, multi-turn masking, cutoff, pre-training chunks.

Labels follow the Hugging Face causal-LM convention: ``labels`` is aligned with ``input_ids`` (the
model shifts them), and ``-100`` marks a token the loss ignores.

Cutoff for sft (``cutoff_len``), so that no sequence is longer than ``cutoff_len``:

- Whole turns are kept from the start of the conversation while they fit, so the system prompt and
  early context survive.
- The first turn that does not fit whole is cut. A later turn keeps its whole prompt and the start
  of its response when the prompt and at least one response token fit; otherwise it and the turns
  after it are dropped: we never learn a later response whose question was cut away.
- Cutting the first turn (or, with ``mask_history``, the last) splits the budget between prompt
  and response: a short side (at most half the budget) is kept whole and the other side gets the
  rest; when both are long they share the budget in proportion to their lengths. A cut prompt keeps
  its *end* (the question and the assistant header the response follows); a cut response keeps its
  beginning.
- With ``mask_history`` only the last turn is learned, so it is fitted first; whole earlier turns
  then fill the remaining budget from the start of the conversation.

Pre-training (``pt``): every document gets EOS appended. Without packing, documents are concatenated
and chunked into ``cutoff_len`` blocks (standard causal-LM practice: no token is wasted on padding
and attention may cross document borders at an EOS). With packing, each document is its own sample
(split into ``cutoff_len`` pieces when longer) and the packer keeps documents from attending to each
other.

A sample is dropped when no token after its first is learned (the first token is never predicted),
e.g. when a cutoff left no response token; the count is returned in :class:`TokenizeReport`.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import TYPE_CHECKING, Any

from tunelab.compat.datasets import dataset_fingerprint
from tunelab.data.template import Template
from tunelab.errors import ConfigError, DataError

if TYPE_CHECKING:
    import datasets

__all__ = [
    "IGNORE_INDEX",
    "TokenizeReport",
    "chunk_documents",
    "encode_documents",
    "split_turn_budget",
    "tokenize_dataset",
    "tokenize_dataset_with_report",
    "tokenize_pretrain",
    "tokenize_supervised",
]

IGNORE_INDEX = -100
TOKENIZED_STAGES = ("pt", "sft", "kd")  # kd trains on sft data, tokenized the same way
logger = logging.getLogger(__name__)


@dataclass
class TokenizeReport:
    """What tokenization did to a split: counts, and every sample's token length before cutoff."""

    n_records: int = 0
    n_samples: int = 0  # samples kept (before packing)
    n_sequences: int = 0  # rows of the returned dataset (after packing or chunking)
    n_dropped: int = 0
    n_cut: int = 0  # samples longer than cutoff_len (sft: cut; pt: documents split across blocks)
    lengths: list[int] = field(default_factory=list)  # per sample (pt: per document), before cutoff


# ---- sft ------------------------------------------------------------------------------------------


def tokenize_supervised(
    record: dict[str, Any],
    tokenizer: Any,
    template: Template,
    *,
    cutoff_len: int,
    train_on_prompt: bool = False,
    mask_history: bool = False,
) -> dict[str, Any]:
    """Return ``input_ids``, ``labels`` (-100 on masked tokens), ``n_full_tokens`` and ``was_cut`` for one record.

    Every assistant turn is learned unless ``mask_history`` (then only the last); prompts are learned
    too with ``train_on_prompt``. See the module docstring for how ``cutoff_len`` is applied.
    """
    try:
        turns = template.encode_turns(
            tokenizer, record["messages"], record.get("system") or "", record.get("tools") or ""
        )
    except DataError as err:
        source = record.get("source") or "a record"
        raise DataError(f"{source}: {err.message}", err.hint) from err
    n_full = sum(len(p) + len(r) for p, r in turns)
    input_ids: list[int] = []
    labels: list[int] = []
    for prompt, response, learned in _fit_turns(turns, cutoff_len, mask_history):
        input_ids += prompt + response
        labels += prompt if (learned and train_on_prompt) else [IGNORE_INDEX] * len(prompt)
        labels += response if learned else [IGNORE_INDEX] * len(response)
    return {"input_ids": input_ids, "labels": labels, "n_full_tokens": n_full, "was_cut": n_full > cutoff_len}


def _fit_turns(
    turns: Sequence[tuple[list[int], list[int]]], cutoff_len: int, mask_history: bool
) -> list[tuple[list[int], list[int], bool]]:
    """Choose and cut turns so the total is at most ``cutoff_len``; each with whether it is learned."""
    last = len(turns) - 1
    if sum(len(p) + len(r) for p, r in turns) <= cutoff_len:
        return [(p, r, not mask_history or k == last) for k, (p, r) in enumerate(turns)]
    if mask_history:
        final = _cut_turn(*turns[last], cutoff_len)
        budget = cutoff_len - len(final[0]) - len(final[1])
        head: list[tuple[list[int], list[int], bool]] = []
        for prompt, response in turns[:last]:
            if len(prompt) + len(response) > budget:
                break
            head.append((prompt, response, False))
            budget -= len(prompt) + len(response)
        return head + [(final[0], final[1], True)]
    kept: list[tuple[list[int], list[int], bool]] = []
    budget = cutoff_len
    for k, (prompt, response) in enumerate(turns):
        if len(prompt) + len(response) <= budget:
            kept.append((prompt, response, True))
            budget -= len(prompt) + len(response)
            continue
        if k == 0:
            cut_prompt, cut_response = _cut_turn(prompt, response, budget)
            kept.append((cut_prompt, cut_response, True))
        elif len(prompt) < budget:  # the whole question fits: learn the start of its answer
            kept.append((prompt, response[: budget - len(prompt)], True))
        break
    return kept


def split_turn_budget(n_prompt: int, n_response: int, budget: int) -> tuple[int, int]:
    """(prompt tokens kept, response tokens kept) of a turn cut to ``budget``: a side shorter than half
    the budget is kept whole and the other gets the rest; two long sides share it in proportion."""
    if n_prompt + n_response <= budget:
        return n_prompt, n_response
    half = budget // 2
    if n_response <= half:
        keep_prompt = budget - n_response
    elif n_prompt <= half:
        keep_prompt = n_prompt
    else:
        keep_prompt = max(1, budget * n_prompt // (n_prompt + n_response))
    return keep_prompt, budget - keep_prompt


def _cut_turn(prompt: list[int], response: list[int], budget: int) -> tuple[list[int], list[int]]:
    """Cut one turn to ``budget`` tokens (see :func:`split_turn_budget`); a cut prompt keeps its end."""
    keep_prompt, keep_response = split_turn_budget(len(prompt), len(response), budget)
    return prompt[len(prompt) - keep_prompt :], response[:keep_response]


def _has_learned_target(labels: Sequence[int]) -> bool:
    # labels[0] is never a target: the model predicts token t from tokens before t.
    return any(label != IGNORE_INDEX for label in labels[1:])


# ---- pt -------------------------------------------------------------------------------------------


def encode_documents(texts: Sequence[str], tokenizer: Any) -> list[list[int]]:
    """Encode each non-empty text with the tokenizer's own special tokens (e.g. BOS) plus EOS at the end."""
    eos = tokenizer.eos_token_id
    documents: list[list[int]] = []
    for text in texts:
        if not text:
            continue
        ids = list(tokenizer(text, add_special_tokens=True, verbose=False)["input_ids"])
        if eos is not None and (not ids or ids[-1] != eos):
            ids.append(eos)
        documents.append(ids)
    return documents


def chunk_documents(documents: Sequence[list[int]], cutoff_len: int, *, concatenate: bool) -> list[list[int]]:
    """Split documents into blocks of at most ``cutoff_len`` tokens; blocks under 2 tokens teach nothing."""
    if concatenate:
        stream = list(chain.from_iterable(documents))
        blocks = [stream[i : i + cutoff_len] for i in range(0, len(stream), cutoff_len)]
    else:
        blocks = [doc[i : i + cutoff_len] for doc in documents for i in range(0, len(doc), cutoff_len)]
    return [block for block in blocks if len(block) >= 2]


def tokenize_pretrain(
    texts: Sequence[str], tokenizer: Any, *, cutoff_len: int, concatenate: bool = True
) -> dict[str, list[list[int]]]:
    """Return pre-training blocks (``input_ids`` and identical ``labels``) for a batch of texts.

    ``concatenate=True`` joins the documents before chunking (no padding waste); ``False`` keeps
    one document per block (what packing wants, so documents can be isolated from each other).
    """
    blocks = chunk_documents(encode_documents(texts, tokenizer), cutoff_len, concatenate=concatenate)
    return {"input_ids": blocks, "labels": [list(block) for block in blocks]}


# ---- datasets -------------------------------------------------------------------------------------


def tokenize_dataset(
    records: datasets.Dataset,
    tokenizer: Any,
    template: Template,
    *,
    stage: str,
    cutoff_len: int,
    train_on_prompt: bool = False,
    mask_history: bool = False,
    packing: bool = False,
    num_proc: int | None = None,
) -> datasets.Dataset:
    """Tokenize a split of records for ``stage`` (pt or sft) into ``input_ids``/``labels`` rows.

    With ``packing`` the rows are packed (see :mod:`tunelab.data.packing`) and carry ``position_ids``.
    Dropped samples are logged; use :func:`tokenize_dataset_with_report` to get the numbers.
    """
    dataset, _ = tokenize_dataset_with_report(
        records,
        tokenizer,
        template,
        stage=stage,
        cutoff_len=cutoff_len,
        train_on_prompt=train_on_prompt,
        mask_history=mask_history,
        packing=packing,
        num_proc=num_proc,
    )
    return dataset


def tokenize_dataset_with_report(
    records: datasets.Dataset,
    tokenizer: Any,
    template: Template,
    *,
    stage: str,
    cutoff_len: int,
    train_on_prompt: bool = False,
    mask_history: bool = False,
    packing: bool = False,
    num_proc: int | None = None,
) -> tuple[datasets.Dataset, TokenizeReport]:
    """Like :func:`tokenize_dataset`, also returning a :class:`TokenizeReport` (counts and lengths)."""
    if stage not in TOKENIZED_STAGES:
        raise ConfigError(
            f"stage: {stage!r} data is not tokenized by tunelab.data.tokenize",
            f"stages {', '.join(TOKENIZED_STAGES)} are tokenized here; stage {stage} prepares its own "
            f"inputs in its stage module (tunelab.train.stages)",
        )
    needed = "text" if stage == "pt" else "messages"
    if needed not in records.column_names:
        raise DataError(
            f"stage {stage} needs records with {needed!r}, but the dataset has columns {records.column_names}",
            "pt reads plain text records; sft reads conversations (messages)",
        )
    map_args: dict[str, Any] = {
        "batched": True,
        "remove_columns": records.column_names,
        "num_proc": num_proc if num_proc and num_proc > 1 and len(records) > 1 else None,
        "load_from_cache_file": False,
        "desc": f"Tokenizing ({stage})",
    }
    key = _fingerprint(
        records, tokenizer, template, stage, cutoff_len, train_on_prompt, mask_history, packing
    )
    if stage == "pt":
        dataset, report = _tokenize_pt(records, tokenizer, cutoff_len, packing, map_args, key)
    else:
        dataset, report = _tokenize_sft(
            records, tokenizer, template, cutoff_len, train_on_prompt, mask_history, map_args, key
        )
    if packing:
        from tunelab.data.packing import pack_sequences

        dataset = pack_sequences(dataset, cutoff_len)
    report.n_sequences = len(dataset)
    if report.n_dropped:
        logger.warning(
            "dropped %d of %d samples with nothing left to learn after cutoff_len=%d",
            report.n_dropped,
            report.n_records,
            cutoff_len,
        )
    return dataset, report


def _tokenize_sft(
    records: datasets.Dataset,
    tokenizer: Any,
    template: Template,
    cutoff_len: int,
    train_on_prompt: bool,
    mask_history: bool,
    map_args: dict[str, Any],
    key: str,
) -> tuple[datasets.Dataset, TokenizeReport]:
    def tokenize_batch(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {"input_ids": [], "labels": [], "n_full_tokens": [], "keep": []}
        columns = list(batch)
        for i in range(len(batch[columns[0]])):
            record = {name: batch[name][i] for name in columns}
            sample = tokenize_supervised(
                record,
                tokenizer,
                template,
                cutoff_len=cutoff_len,
                train_on_prompt=train_on_prompt,
                mask_history=mask_history,
            )
            out["input_ids"].append(sample["input_ids"])
            out["labels"].append(sample["labels"])
            out["n_full_tokens"].append(sample["n_full_tokens"])
            out["keep"].append(_has_learned_target(sample["labels"]))
        return out

    tokenized = records.map(tokenize_batch, new_fingerprint=key, **map_args)
    lengths = list(tokenized["n_full_tokens"])
    keep = list(tokenized["keep"])
    dataset = tokenized.filter(
        lambda flags: flags, input_columns="keep", batched=True, new_fingerprint=key + "-kept"
    )
    dataset = dataset.remove_columns(["n_full_tokens", "keep"])
    report = TokenizeReport(
        n_records=len(records),
        n_samples=len(dataset),
        n_dropped=keep.count(False),
        n_cut=sum(n > cutoff_len for n in lengths),
        lengths=lengths,
    )
    return dataset, report


def _tokenize_pt(
    records: datasets.Dataset,
    tokenizer: Any,
    cutoff_len: int,
    packing: bool,
    map_args: dict[str, Any],
    key: str,
) -> tuple[datasets.Dataset, TokenizeReport]:
    def encode_batch(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        return {"document": encode_documents(batch["text"], tokenizer)}

    def chunk_batch(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        blocks = chunk_documents(batch["document"], cutoff_len, concatenate=not packing)
        return {"input_ids": blocks, "labels": [list(block) for block in blocks]}

    documents = records.map(encode_batch, new_fingerprint=key + "-docs", **map_args)
    lengths = [len(doc) for doc in documents["document"]]
    chunk_args = {**map_args, "remove_columns": ["document"], "desc": "Chunking (pt)"}
    dataset = documents.map(chunk_batch, new_fingerprint=key, **chunk_args)
    report = TokenizeReport(
        n_records=len(records),
        n_samples=len(documents),
        n_dropped=len(records) - len(documents),  # empty texts
        n_cut=sum(n > cutoff_len for n in lengths),
        lengths=lengths,
    )
    return dataset, report


def _fingerprint(records: datasets.Dataset, tokenizer: Any, template: Template, *options: Any) -> str:
    """A cache key from the inputs, so datasets need not hash the tokenizer (slow and noisy)."""
    parts = [
        dataset_fingerprint(records),
        getattr(tokenizer, "name_or_path", ""),
        str(len(tokenizer)),
        repr(template),
        repr(options),
    ]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]
