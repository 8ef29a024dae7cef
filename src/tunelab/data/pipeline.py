"""From a RunConfig to model-ready datasets: load records, pick the template, tokenize, pack.

``build_datasets`` is the one call a pt/sft stage needs; ``prepare_data`` also hands back the
records and template (what ``tunelab data preview`` shows).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from tunelab.data.template import Template, template_for
from tunelab.data.tokenize import TokenizeReport, tokenize_dataset_with_report

if TYPE_CHECKING:
    import datasets

    from tunelab.config import RunConfig

__all__ = ["DataStats", "PreparedData", "build_datasets", "length_stats", "prepare_data"]


@dataclass(frozen=True)
class DataStats:
    """What the training data looks like after tokenization (lengths are of the train split).

    Lengths are per sample *before* cutoff (pt: per document), so they show what cutoff_len costs.
    """

    n_train: int  # training samples kept (pt: documents)
    n_eval: int  # evaluation samples kept
    n_train_sequences: int  # rows the model sees (after packing / pt chunking)
    len_min: int
    len_mean: float
    len_p95: int  # nearest-rank 95th percentile
    len_max: int
    share_cut: float  # share of training samples longer than cutoff_len
    n_dropped: int  # samples dropped with nothing left to learn (train + eval)
    cutoff_len: int
    streamed: bool = False  # streaming: the training counts are unknown until the data is read

    def as_dict(self) -> dict[str, Any]:
        """The stats as a plain dict (for metrics.json and the web UI)."""
        return asdict(self)

    def describe(self) -> str:
        """One line for logs and the console."""
        if self.streamed:
            return (
                f"data: training records streamed (read while training, not counted ahead); "
                f"{self.n_eval} eval samples"
            )
        return (
            f"data: {self.n_train} train / {self.n_eval} eval samples -> {self.n_train_sequences} sequences; "
            f"tokens per sample min {self.len_min}, mean {self.len_mean:.1f}, p95 {self.len_p95}, "
            f"max {self.len_max}; {100 * self.share_cut:.1f}% cut at cutoff_len={self.cutoff_len}; "
            f"{self.n_dropped} dropped"
        )


@dataclass
class PreparedData:
    """Everything build_datasets computed, for callers that also need the records or template."""

    train: datasets.Dataset
    eval: datasets.Dataset | None
    stats: DataStats
    template: Template
    train_records: datasets.Dataset


def length_stats(lengths: Sequence[int]) -> tuple[int, float, int, int]:
    """(min, mean, nearest-rank p95, max) of ``lengths``; zeros when empty."""
    if not lengths:
        return 0, 0.0, 0, 0
    ordered = sorted(lengths)
    p95 = ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]
    return ordered[0], sum(ordered) / len(ordered), p95, ordered[-1]


def prepare_data(config: RunConfig, tokenizer: Any, *, packing: bool | None = None) -> PreparedData:
    """Load, template and tokenize both splits for ``config`` (``packing`` overrides config.data.packing)."""
    from tunelab.data.loader import load_records

    data, stage = config.data, config.finetuning.stage
    template = template_for(data, tokenizer)
    options: dict[str, Any] = {
        "stage": stage,
        "cutoff_len": data.cutoff_len,
        "train_on_prompt": data.train_on_prompt,
        "mask_history": data.mask_history,
        "packing": data.packing if packing is None else packing,
        "num_proc": data.preprocessing_num_workers,
    }
    if data.streaming:
        # the eval split of a stream is held in memory and tokenized like any eval split, unpacked
        return _prepare_streaming(config, tokenizer, template, {**options, "packing": False})
    splits = load_records(data, stage, seed=config.training.seed)
    train, train_report = tokenize_dataset_with_report(splits.train, tokenizer, template, **options)
    eval_set, eval_report = None, TokenizeReport()
    if splits.eval is not None:
        eval_set, eval_report = tokenize_dataset_with_report(splits.eval, tokenizer, template, **options)
    stats = _stats(train_report, eval_report, data.cutoff_len)
    return PreparedData(
        train=train, eval=eval_set, stats=stats, template=template, train_records=splits.train
    )


def _prepare_streaming(
    config: RunConfig, tokenizer: Any, template: Template, options: dict[str, Any]
) -> PreparedData:
    """The lazy training stream and the in-memory eval split; stats cover the eval split only."""
    from tunelab.data.loader import records_to_dataset
    from tunelab.data.streaming import stream_datasets

    data = config.data
    train, eval_records = stream_datasets(config, tokenizer, template)
    eval_set, eval_report = None, TokenizeReport()
    if eval_records:
        eval_set, eval_report = tokenize_dataset_with_report(
            records_to_dataset(eval_records), tokenizer, template, **options
        )
    # the training stream is not read ahead: its counts and lengths are unknown (0) until trained on
    stats = replace(_stats(TokenizeReport(), eval_report, data.cutoff_len), streamed=True)
    return PreparedData(train=train, eval=eval_set, stats=stats, template=template, train_records=train)


def build_datasets(
    config: RunConfig, tokenizer: Any
) -> tuple[datasets.Dataset, datasets.Dataset | None, DataStats]:
    """Return (train, eval or None, stats): tokenized, masked, cut and (with packing) packed.

    With ``tokenized_path`` the result is saved there, and read back instead when it exists.
    """
    from tunelab.data import tokenized_cache

    path = config.data.tokenized_path
    if path and tokenized_cache.has_tokenized_data(path):
        return tokenized_cache.load_tokenized(path)
    prepared = prepare_data(config, tokenizer)
    if path:
        tokenized_cache.save_tokenized(path, prepared.train, prepared.eval, prepared.stats)
    return prepared.train, prepared.eval, prepared.stats


def _stats(train: TokenizeReport, eval_report: TokenizeReport, cutoff_len: int) -> DataStats:
    low, mean, p95, high = length_stats(train.lengths)
    return DataStats(
        n_train=train.n_samples,
        n_eval=eval_report.n_samples,
        n_train_sequences=train.n_sequences,
        len_min=low,
        len_mean=mean,
        len_p95=p95,
        len_max=high,
        share_cut=train.n_cut / len(train.lengths) if train.lengths else 0.0,
        n_dropped=train.n_dropped + eval_report.n_dropped,
        cutoff_len=cutoff_len,
    )
