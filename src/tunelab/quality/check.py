"""``tunelab data check``: what is wrong with a config's data, found before any training starts.

The check reads the config's datasets as a run would (same registry, formats, template and
tokenizer, same train/eval/test split), but keeps going past bad records, and reports:
malformed and empty records, exact and near duplicates, conflicting answers, preference pairs
with chosen == rejected, eval/test records that also appear in the training split, the token
length distribution with the share ``cutoff_len`` cuts, and the mix of scripts.

Example::

    report = check_data(load_config("examples/sft_lora_tiny.yaml"))
    report.n_problems          # 0 when clean
    report.counts["near"]      # near-duplicate records (beyond each cluster's first)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tunelab.quality.dedup import NearIndex, check_threshold, exact_clusters, near_clusters
from tunelab.quality.detectors import conflicting_answers, empty_fields, identical_pairs, script_mix
from tunelab.quality.scan import Finding, RecordRef, ScannedDataset, scan_dataset
from tunelab.quality.textkey import normalize, record_text

if TYPE_CHECKING:
    from tunelab.config import RunConfig

__all__ = ["DEFAULT_FAIL_ON", "KINDS", "QualityReport", "check_data", "split_positions"]

KINDS = (
    "malformed",
    "empty",
    "exact",
    "near",
    "conflicts",
    "chosen_eq_rejected",
    "contaminated",
    "too_long",
)
# What makes `tunelab data check` exit 1. too_long is reported but not a failure by default:
# cutting long samples is what cutoff_len is for (pt even splits every long document).
DEFAULT_FAIL_ON = tuple(k for k in KINDS if k != "too_long")


@dataclass
class QualityReport:
    """Everything a check found: findings per kind, per-dataset facts, token lengths."""

    stage: str
    near_threshold: float
    cutoff_len: int
    datasets: list[dict[str, Any]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)  # training-split records, tokens before cutoff
    splits: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        """Number of findings per kind (every kind present, zero when none)."""
        counts = dict.fromkeys(KINDS, 0)
        for finding in self.findings:
            counts[finding.kind] += 1
        return counts

    def problems(self, fail_on: Sequence[str] = DEFAULT_FAIL_ON) -> int:
        """How many findings are of the kinds that count as failures."""
        return sum(n for kind, n in self.counts.items() if kind in fail_on)

    @property
    def n_problems(self) -> int:
        return self.problems()

    @property
    def share_cut(self) -> float:
        """Share of training records longer than cutoff_len (0 when lengths were not measured)."""
        return sum(n > self.cutoff_len for n in self.lengths) / len(self.lengths) if self.lengths else 0.0

    def by_kind(self, kind: str) -> list[Finding]:
        return [f for f in self.findings if f.kind == kind]

    def as_dict(self) -> dict[str, Any]:
        """The report.json document."""
        from tunelab.data.pipeline import length_stats

        low, mean, p95, high = length_stats(self.lengths)
        return {
            "stage": self.stage,
            "near_threshold": self.near_threshold,
            "cutoff_len": self.cutoff_len,
            "counts": self.counts,
            "n_problems": self.n_problems,
            "datasets": self.datasets,
            "splits": self.splits,
            "lengths": {
                "n": len(self.lengths),
                "min": low,
                "mean": round(mean, 1),
                "p95": p95,
                "max": high,
                "share_cut": round(self.share_cut, 4),
            }
            if self.lengths
            else None,
            "notes": self.notes,
            "findings": [f.as_dict() for f in self.findings],
        }


def _duplicate_findings(texts: list[str], refs: list[RecordRef], threshold: float) -> list[Finding]:
    """Exact duplicates, then near duplicates not already exact; ``other`` is the cluster's first record."""
    findings, exact_members = [], set()
    for cluster in exact_clusters(texts):
        for i in cluster[1:]:
            exact_members.add(i)
            findings.append(Finding("exact", refs[i], "same text", other=refs[cluster[0]]))
    for cluster in near_clusters(texts, threshold):
        for i in cluster[1:]:
            if i not in exact_members:
                findings.append(
                    Finding("near", refs[i], f"similar text (>= {threshold:g})", other=refs[cluster[0]])
                )
    return findings


def split_positions(
    config: RunConfig, train: list[ScannedDataset], evals: list[ScannedDataset]
) -> dict[str, list[int]]:
    """Positions (in the pooled train records) of the records in each split, as a run would split them.

    Eval datasets given by eval_dataset are not part of the pool; their records are "eval_dataset".
    """
    from tunelab.data.loader import assemble_splits, records_to_dataset

    stage = config.finetuning.stage
    parts = [records_to_dataset(d.records) for d in train]
    eval_parts = [records_to_dataset(d.records) for d in evals]
    splits = assemble_splits(parts, eval_parts, config.data, stage, seed=config.training.seed)
    position = {r["source"]: i for i, r in enumerate(r for d in train for r in d.records)}
    out = {"train": [position[s] for s in splits.train["source"]]}
    if splits.test is not None:
        out["test"] = [position[s] for s in splits.test["source"]]
    if splits.eval is not None and not evals:
        out["eval"] = [position[s] for s in splits.eval["source"]]
    return out


def _contamination(
    pool_texts: list[str],
    pool_refs: list[RecordRef],
    split: dict[str, list[int]],
    held_out: list[tuple[str, str, RecordRef]],
    threshold: float,
) -> list[Finding]:
    """Held-out records (eval, test, eval_dataset) whose text is in the training split, exactly or nearly."""
    train = split["train"]
    train_texts = [pool_texts[i] for i in train]
    exact: dict[str, list[int]] = {}
    for i, text in zip(train, train_texts):
        exact.setdefault(normalize(text), []).append(i)
    index = NearIndex(train_texts, threshold)
    near = index.query([text for _, text, _ in held_out])
    findings = []
    for (name, text, ref), matches in zip(held_out, near):
        # every training copy leaks, so each is a finding of its own (clean removes them all)
        found = {i: "exactly" for i in exact.get(normalize(text), [])}
        for position, similarity in matches:
            found.setdefault(train[position], f"nearly ({similarity:.2f})")
        for other, how in sorted(found.items()):
            detail = f"{name} record {how} in the training split"
            findings.append(Finding("contaminated", ref, detail, other=pool_refs[other]))
    return findings


def check_data(config: RunConfig, *, near_threshold: float = 0.8, tokens: bool = True) -> QualityReport:
    """Check every dataset of ``config`` (train datasets and eval_dataset); see the module docstring.

    ``tokens=False`` skips loading the tokenizer (no length distribution, no too_long findings).
    """
    check_threshold(near_threshold)
    data, stage = config.data, config.finetuning.stage
    report = QualityReport(stage=stage, near_threshold=near_threshold, cutoff_len=data.cutoff_len)
    scan = {"dataset_dir": data.dataset_dir, "stage": stage}
    train = [scan_dataset(n, role="train", **scan) for n in data.dataset or []]
    evals = [scan_dataset(n, role="eval", **scan) for n in data.eval_dataset or []]
    if data.max_samples is not None or any(d.attr.num_samples for d in train + evals):
        report.notes.append("max_samples / num_samples are ignored: the check reads the whole files")
    records = [r for d in train for r in d.records]
    refs = [ref for d in train for ref in d.refs]
    texts = [record_text(r, stage).full for r in records]
    for d in train + evals:
        report.findings += d.malformed
        report.datasets.append(
            {
                "name": d.name,
                "role": d.role,
                "files": [str(f) for f in d.files],
                "n_rows": d.n_rows,
                "n_records": len(d.records),
                **script_mix(d.records, stage),
            }
        )
    for group in (train, evals):
        group_records = [r for d in group for r in d.records]
        group_refs = [ref for d in group for ref in d.refs]
        report.findings += empty_fields(group_records, group_refs, stage)
        report.findings += conflicting_answers(group_records, group_refs, stage)
        if stage in ("rm", "dpo"):
            report.findings += identical_pairs(group_records, group_refs)
    report.findings += _duplicate_findings(texts, refs, near_threshold)
    if records:
        split = split_positions(config, train, evals)
        report.splits = {name: len(positions) for name, positions in split.items()}
        held_out = [(name, texts[i], refs[i]) for name in ("eval", "test") for i in split.get(name, [])]
        held_out += [
            ("eval_dataset", record_text(r, stage).full, ref)
            for d in evals
            for r, ref in zip(d.records, d.refs)
        ]
        if evals:
            report.splits["eval_dataset"] = sum(len(d.records) for d in evals)
        report.findings += _contamination(texts, refs, split, held_out, near_threshold)
        if tokens:
            report.lengths = _measure_lengths(config, [records[i] for i in split["train"]])
            train_refs = [refs[i] for i in split["train"]]
            if stage != "pt":
                report.findings += [
                    Finding("too_long", ref, f"{n} tokens > cutoff_len {data.cutoff_len}")
                    for ref, n in zip(train_refs, report.lengths)
                    if n > data.cutoff_len
                ]
    return report


def _measure_lengths(config: RunConfig, records: list[dict[str, Any]]) -> list[int]:
    from tunelab.data.template import template_for
    from tunelab.model import load_tokenizer
    from tunelab.quality.lengths import token_lengths

    tokenizer = load_tokenizer(config.model)
    # pt and cls text is tokenized as it is: no chat template (an encoder may lack its tokens)
    template = None if config.finetuning.stage in ("pt", "cls") else template_for(config.data, tokenizer)
    return token_lengths(records, tokenizer, template, config.finetuning.stage)
