"""``tunelab data preview``: show what the model will learn from, before spending compute on it.

A few samples are decoded with the masked part (context the loss ignores) dim and the learned part
highlighted. The learned part is also wrapped in ⟦ ⟧, so the difference survives a terminal or log
without colour. Below them: token-length statistics of the whole training split.

Every stage is shown as its trainer sees it: pt and sft as one sequence; rm and dpo as the prompt
with the chosen and then the rejected response; kto as the prompt with its desirable or undesirable
completion; ppo as the prompt the policy answers (nothing learned from the text itself); cls as the
tokenized text (nothing learned from the text either) with its class.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tunelab.data.pipeline import DataStats, prepare_data
from tunelab.data.tokenize import IGNORE_INDEX, tokenize_pretrain, tokenize_supervised

if TYPE_CHECKING:
    from rich.console import Console

    from tunelab.config import RunConfig

__all__ = ["PreviewReport", "PreviewSample", "preview_data", "render_preview", "segment_tokens"]

LEARN_OPEN, LEARN_CLOSE = "⟦", "⟧"


@dataclass
class PreviewSample:
    """One decoded sample: (text, learned?) segments in order."""

    source: str
    segments: list[tuple[str, bool]]
    n_tokens: int
    n_learned: int
    was_cut: bool
    role: str = ""  # what the sample is for its stage: chosen, rejected, desirable, label=..., prompt

    def title(self) -> str:
        """``role · source · N tokens, M learned[ · CUT]``: the heading of the sample."""
        parts = [p for p in (self.role, self.source or "record") if p]
        cut = " · CUT at cutoff_len" if self.was_cut else ""
        return f"{' · '.join(parts)} · {self.n_tokens} tokens, {self.n_learned} learned{cut}"

    def plain_text(self) -> str:
        """The sample with learned segments wrapped in ⟦ ⟧ (what a no-colour terminal shows)."""
        return "".join(
            f"{LEARN_OPEN}{text}{LEARN_CLOSE}" if learned else text for text, learned in self.segments
        )


@dataclass
class PreviewReport:
    """Samples and statistics for one config."""

    stage: str
    template: str
    cutoff_len: int
    stats: DataStats
    samples: list[PreviewSample] = field(default_factory=list)


def segment_tokens(tokenizer: Any, input_ids: Sequence[int], labels: Sequence[int]) -> list[tuple[str, bool]]:
    """Decode runs of consecutive tokens that share the same learned/masked state."""
    segments: list[tuple[str, bool]] = []
    start = 0
    for end in range(1, len(input_ids) + 1):
        if end == len(input_ids) or (labels[end] != IGNORE_INDEX) != (labels[start] != IGNORE_INDEX):
            text = tokenizer.decode(list(input_ids[start:end]), skip_special_tokens=False)
            segments.append((text, labels[start] != IGNORE_INDEX))
            start = end
    return segments


def preview_data(config: RunConfig, tokenizer: Any, n: int = 3) -> PreviewReport:
    """Tokenize the config's data as training would and return ``n`` decoded records plus statistics.

    Samples are shown unpacked (one record each); the statistics include packing's sequence count.
    A preference pair gives two samples (chosen, rejected).
    """
    from tunelab.data.tokenize_pref import PREFERENCE_STAGES

    if config.finetuning.stage in PREFERENCE_STAGES:
        return _preview_preference(config, tokenizer, n)
    if config.finetuning.stage == "cls":
        return _preview_classification(config, tokenizer, n)
    prepared = prepare_data(config, tokenizer)
    data, stage = config.data, config.finetuning.stage
    records = prepared.train_records.select(range(min(n, len(prepared.train_records))))
    samples: list[PreviewSample] = []
    for record in records:
        if stage == "pt":
            block = tokenize_pretrain(
                [record["text"]], tokenizer, cutoff_len=data.cutoff_len, concatenate=False
            )
            if not block["input_ids"]:
                continue
            ids, labels = block["input_ids"][0], block["labels"][0]
            was_cut = len(block["input_ids"]) > 1
        else:
            sample = tokenize_supervised(
                record,
                tokenizer,
                prepared.template,
                cutoff_len=data.cutoff_len,
                train_on_prompt=data.train_on_prompt,
                mask_history=data.mask_history,
            )
            ids, labels, was_cut = sample["input_ids"], sample["labels"], sample["was_cut"]
        samples.append(
            PreviewSample(
                source=record.get("source") or "",
                segments=segment_tokens(tokenizer, ids, labels),
                n_tokens=len(ids),
                n_learned=sum(label != IGNORE_INDEX for label in labels),
                was_cut=was_cut,
            )
        )
    return PreviewReport(
        stage=stage,
        template=prepared.template.name,
        cutoff_len=data.cutoff_len,
        stats=prepared.stats,
        samples=samples,
    )


def _preview_preference(config: RunConfig, tokenizer: Any, n: int) -> PreviewReport:
    """rm/dpo: prompt + chosen, prompt + rejected; kto: prompt + completion; ppo: the prompt alone."""
    from tunelab.data.loader import load_records
    from tunelab.data.tokenize_pref import (
        build_preference_datasets,
        tokenize_pairwise,
        tokenize_prompt,
        tokenize_unpaired,
    )

    data, stage = config.data, config.finetuning.stage
    prepared = build_preference_datasets(config, tokenizer)  # statistics, and the errors training would raise
    records = load_records(data, stage, seed=config.training.seed).train
    template = prepared.template
    samples: list[PreviewSample] = []
    for record in records.select(range(min(n, len(records)))):
        source = record.get("source") or ""
        if stage == "ppo":
            budget = data.cutoff_len - config.generation.max_new_tokens
            row = tokenize_prompt(record, tokenizer, template, max_prompt_len=budget)
            ids = row["input_ids"]
            samples.append(
                PreviewSample(source, [(_decode(tokenizer, ids), False)], len(ids), 0, row["n_full_tokens"] > budget,
                              role="prompt (the policy writes the reply)")
            )  # fmt: skip
            continue
        if stage == "kto":
            row = tokenize_unpaired(record, tokenizer, template, cutoff_len=data.cutoff_len)
            sides = [("desirable" if row["label"] else "undesirable", row["completion_ids"])]
        else:
            row = tokenize_pairwise(record, tokenizer, template, cutoff_len=data.cutoff_len)
            sides = [("chosen", row["chosen_ids"]), ("rejected", row["rejected_ids"])]
        prompt = row["prompt_ids"]
        for role, response in sides:
            segments = [(_decode(tokenizer, prompt), False), (_decode(tokenizer, response), True)]
            cut = row["n_full_tokens"] > data.cutoff_len
            samples.append(
                PreviewSample(source, segments, len(prompt) + len(response), len(response), cut, role)
            )
    return PreviewReport(stage, template.name, data.cutoff_len, prepared.stats, samples)


def _preview_classification(config: RunConfig, tokenizer: Any, n: int) -> PreviewReport:
    """cls: each text as the encoder sees it (special tokens included) and the class it is trained on."""
    from tunelab.data.classification import build_classification_data, load_classification_records

    data = config.data
    splits, label_map = load_classification_records(data, seed=config.training.seed)
    prepared = build_classification_data(splits, label_map, tokenizer, cutoff_len=data.cutoff_len)
    samples: list[PreviewSample] = []
    for record in splits.train.select(range(min(n, len(splits.train)))):
        n_full = len(tokenizer(record["text"], add_special_tokens=True)["input_ids"])
        ids = tokenizer(record["text"], truncation=True, max_length=data.cutoff_len)["input_ids"]
        segments = [(_decode(tokenizer, ids), False)]
        role = f"label={record['label']}"
        samples.append(
            PreviewSample(record.get("source") or "", segments, len(ids), 0, n_full > len(ids), role)
        )
    return PreviewReport("cls", "none (classification)", data.cutoff_len, prepared.stats, samples)


def _decode(tokenizer: Any, ids: Sequence[int]) -> str:
    return tokenizer.decode(list(ids), skip_special_tokens=False)


def render_preview(report: PreviewReport, console: Console) -> None:
    """Print the samples (masked dim, learned highlighted and in ⟦ ⟧) and the statistics table."""
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    console.print(
        Text.assemble(
            ("data preview", "bold"),
            f"  stage {report.stage} · template {report.template} · cutoff_len {report.cutoff_len}\n",
            ("masked (not learned)", "dim"),
            "   ",
            (f"{LEARN_OPEN}learned{LEARN_CLOSE}", "bold green"),
        )
    )
    for number, sample in enumerate(report.samples, 1):
        body = Text()
        for text, learned in sample.segments:
            if learned:
                body.append(f"{LEARN_OPEN}{text}{LEARN_CLOSE}", style="bold green")
            else:
                body.append(text, style="dim")
        title = Text(f"sample {number} · {sample.title()}")
        console.print(Panel(body, title=title, title_align="left"))
    stats = report.stats
    table = Table(title="token lengths (train, before cutoff)", title_justify="left")
    for column in ("samples", "eval", "sequences", "min", "mean", "p95", "max", "cut", "dropped"):
        table.add_column(column, justify="right")
    table.add_row(
        str(stats.n_train),
        str(stats.n_eval),
        str(stats.n_train_sequences),
        str(stats.len_min),
        f"{stats.len_mean:.1f}",
        str(stats.len_p95),
        str(stats.len_max),
        f"{100 * stats.share_cut:.1f}%",
        str(stats.n_dropped),
    )
    console.print(table)
    if stats.share_cut > 0:
        console.print(
            f"{100 * stats.share_cut:.1f}% of samples are longer than cutoff_len={report.cutoff_len} "
            f"and get cut; raise cutoff_len (p95 is {stats.len_p95}) to keep them whole."
        )
