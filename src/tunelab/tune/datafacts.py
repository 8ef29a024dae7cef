"""What the training data looks like to the rules: record count and token-length percentiles.

Lengths are measured after templating with the model's own tokenizer (``tunelab.data.pipeline``),
because a "1024-token" cutoff means nothing until the chat template's tokens are counted too.
Without a tokenizer (a `--model-config` preset whose files are not here) only records are counted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tunelab.errors import TunelabError

if TYPE_CHECKING:
    from tunelab.config import RunConfig
    from tunelab.data.pipeline import DataStats, PreparedData

__all__ = ["DataFacts", "load_data_facts", "percentile"]


def percentile(values: Sequence[int], share: float) -> int:
    """Nearest-rank percentile (``share`` in [0, 1]) of ``values``; 0 when empty."""
    if not values:
        return 0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


@dataclass
class DataFacts:
    """Record counts, full token lengths (before cutoff) and the longest row training would see."""

    n_train: int | None = None
    n_eval: int | None = None
    lengths: list[int] | None = None  # per training sample, before cutoff (pt: per document)
    longest: int = 0  # tokens in the longest training row after cutoff and packing
    longest_eval: int = 0
    stats: DataStats | None = None
    prepared: PreparedData | None = None
    tokenizer: Any = None
    problem: str | None = None  # why lengths are missing, when they are

    def p(self, share: float) -> int:
        return percentile(self.lengths or [], share)


def load_data_facts(config: RunConfig, *, tokens: str = "rows") -> DataFacts:
    """Count the config's records and measure their tokens; a missing dataset or tokenizer gives partial facts.

    ``tokens``: "rows" tokenizes as training does (cutoff, packing) and keeps the rows, for probes and
    the worst-case length; "lengths" keeps each sample's full length before cutoff, for choosing
    cutoff_len; "none" only counts records.
    """
    if not config.data.dataset:
        return DataFacts(problem="no dataset in the config")
    from tunelab.data.loader import load_records

    try:
        splits = load_records(config.data, config.finetuning.stage, seed=config.training.seed)
    except TunelabError as err:
        return DataFacts(problem=err.message)
    facts = DataFacts(n_train=len(splits.train), n_eval=len(splits.eval) if splits.eval is not None else 0)
    if tokens == "none":
        facts.problem = "token lengths not measured (no tokenizer for a --model-config preset)"
        return facts
    from tunelab.model import load_tokenizer

    try:
        facts.tokenizer = load_tokenizer(config.model)
        if tokens == "lengths":
            facts.lengths = _full_lengths(config, facts.tokenizer, splits.train)
            return facts
        from tunelab.data.pipeline import prepare_data

        prepared = prepare_data(config, facts.tokenizer)
    except TunelabError as err:
        facts.problem = err.message
        return facts
    facts.prepared, facts.stats = prepared, prepared.stats
    facts.longest = max((len(ids) for ids in prepared.train["input_ids"]), default=0)
    if prepared.eval is not None and len(prepared.eval):
        facts.longest_eval = max(len(ids) for ids in prepared.eval["input_ids"])
    return facts


def _full_lengths(config: RunConfig, tokenizer: Any, records: Any) -> list[int]:
    """Each training sample's token count after templating and before cutoff."""
    from tunelab.data.template import template_for
    from tunelab.data.tokenize import tokenize_dataset_with_report

    data = config.data
    template = template_for(data, tokenizer)
    _, report = tokenize_dataset_with_report(
        records,
        tokenizer,
        template,
        stage=config.finetuning.stage,
        cutoff_len=data.cutoff_len,
        train_on_prompt=data.train_on_prompt,
        mask_history=data.mask_history,
    )
    return list(report.lengths)
