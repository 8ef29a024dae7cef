"""``tunelab data preview``: show what the model will learn from, before spending compute on it.

A few samples are decoded with the masked part (context the loss ignores) dim and the learned part
highlighted. The learned part is also wrapped in ⟦ ⟧, so the difference survives a terminal or log
without colour. Below them: token-length statistics of the whole training split.
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
    """Tokenize the config's data as training would and return ``n`` decoded samples plus statistics.

    Samples are shown unpacked (one record each); the statistics include packing's sequence count.
    """
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
        title = Text(
            f"sample {number} · {sample.source or 'record'} · {sample.n_tokens} tokens, "
            f"{sample.n_learned} learned{' · CUT at cutoff_len' if sample.was_cut else ''}"
        )
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
