"""``tunelab data select``: keep the share of the training data the model itself scores best.

- ``ifd``: instruction-following difficulty (see :mod:`tunelab.quality.scoring`); keeps the
  highest IFD among records with IFD <= 1 (those above 1 come last: the prompt does not help).
- ``perplexity``: perplexity of the learned tokens; keeps the lowest by default (``prefer``).
- ``length``: tokens of the record; keeps the longest by default (long answers as a strong
  baseline for alignment data, Zhao et al. 2024, "Long Is More for Alignment").

Scores are appended to ``scores.jsonl`` batch by batch, so an interrupted run resumes where it
stopped; ``scores.meta.json`` records what they were computed with and refuses a different setup.
The kept records keep their order and are written in the input's own format, with a
dataset_info.json, like :mod:`tunelab.quality.clean`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunelab.data.registry import REGISTRY_FILE
from tunelab.errors import ConfigError
from tunelab.quality.lengths import record_token_length
from tunelab.quality.scan import RecordRef, ScannedDataset, scan_dataset
from tunelab.quality.scoring import SCORERS, encode_for_scoring, sequence_losses
from tunelab.quality.writer import registry_entry, registry_name, write_rows

if TYPE_CHECKING:
    from tunelab.config import RunConfig

__all__ = ["SelectResult", "select_data"]

_PREFER = {"ifd": "high", "perplexity": "low", "length": "high"}
_STAGES = {
    "ifd": ("sft",),
    "perplexity": ("sft", "pt"),
    "length": ("pt", "sft", "rm", "dpo", "kto", "ppo", "cls"),
}


@dataclass
class SelectResult:
    """What was kept, by which score, and where it was written."""

    out_dir: Path
    by: str
    n_total: int = 0
    n_kept: int = 0
    n_scored_now: int = 0  # scored in this call (the rest came from scores.jsonl)
    kept: dict[str, int] = field(default_factory=dict)
    mean_all: float = math.nan
    mean_kept: float = math.nan


def _key(ref: RecordRef) -> str:
    return f"{ref.dataset}|{ref.file}|{ref.index}"


def _check(config: RunConfig, by: str, keep: float, prefer: str | None) -> tuple[int | float, str]:
    stage = config.finetuning.stage
    if by not in SCORERS:
        raise ConfigError(f"--by {by}: unknown score", f"choose from {', '.join(SCORERS)}")
    if stage not in _STAGES[by]:
        raise ConfigError(
            f"--by {by} scores stage {'/'.join(_STAGES[by])} data, but the config's stage is {stage}",
            "use --by length for this data, or a config with a matching stage",
        )
    if not keep > 0:
        raise ConfigError(f"--keep {keep:g} must be positive", "a share such as 0.3, or a count such as 500")
    prefer = prefer or _PREFER[by]
    if prefer not in ("high", "low"):
        raise ConfigError(f"--prefer {prefer}: unknown", "use high or low")
    return keep, prefer


def _load_scores(out: Path, meta: dict[str, Any]) -> dict[str, dict[str, Any]]:
    meta_path, scores_path = out / "scores.meta.json", out / "scores.jsonl"
    if meta_path.is_file():
        before = json.loads(meta_path.read_text())
        if before != meta:
            changed = sorted(k for k in meta if before.get(k) != meta[k])
            raise ConfigError(
                f"{out} holds scores computed with other settings ({', '.join(changed)} differ)",
                "choose another -o folder, or delete scores.jsonl there to score again",
            )
    out.mkdir(parents=True, exist_ok=True)
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    if not scores_path.is_file():
        return {}
    scores = {}
    for line in scores_path.read_text().splitlines():
        if line.strip():  # a line cut by an interruption is scored again
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            scores[row["key"]] = row
    return scores


def _score_batch(
    by: str, batch: list[dict[str, Any]], tools: Any, stage: str, cutoff: int
) -> list[dict[str, Any]]:
    tokenizer, template, model, pad_id = tools
    if by == "length":  # what training sees: template and tokenizer, every stage's own layout
        return [{"score": float(record_token_length(r, tokenizer, template, stage))} for r in batch]
    encoded = [encode_for_scoring(r, tokenizer, template, stage) for r in batch]
    losses = sequence_losses(
        model,
        [(ids, start) for ids, start, _ in encoded],
        pad_id=pad_id,
        batch_size=len(batch),
        max_len=cutoff,
    )
    if by == "perplexity":
        return [{"score": math.exp(min(loss, 50.0)), "loss": loss} for loss in losses]
    alone = sequence_losses(
        model, [(ids, 1) for _, _, ids in encoded], pad_id=pad_id, batch_size=len(batch), max_len=cutoff
    )
    return [
        {
            "score": cond / solo if solo and not math.isnan(cond) else math.nan,
            "loss": cond,
            "loss_alone": solo,
        }
        for cond, solo in zip(losses, alone)
    ]


def _tools(config: RunConfig, by: str) -> tuple[Any, Any, Any, int]:
    from tunelab.data.template import template_for

    if by == "length":
        from tunelab.model import load_tokenizer

        tokenizer = load_tokenizer(config.model)
        # pt and cls text is tokenized as it is: no chat template (an encoder may lack its tokens)
        template = None if config.finetuning.stage in ("pt", "cls") else template_for(config.data, tokenizer)
        return tokenizer, template, None, 0
    from tunelab.infer.engine import load_engine

    engine = load_engine(config)
    return engine.tokenizer, engine.template, engine.model, engine.pad_id


def _rank(scored: list[tuple[int, float]], n_keep: int, by: str, prefer: str) -> set[int]:
    """Positions of the ``n_keep`` best; NaN scores (nothing to score) always last; IFD > 1 after IFD <= 1."""
    sign = -1.0 if prefer == "high" else 1.0

    def order(item: tuple[int, float]) -> tuple[bool, bool, float, int]:
        position, score = item
        bad = math.isnan(score)
        noisy = by == "ifd" and not bad and score > 1.0
        return bad, noisy, 0.0 if bad else sign * score, position

    return {position for position, _ in sorted(scored, key=order)[:n_keep]}


def select_data(
    config: RunConfig,
    out_dir: str | Path,
    *,
    by: str = "ifd",
    keep: float = 0.3,
    prefer: str | None = None,
    batch_size: int = 8,
    console: Any = None,
    on_batch: Callable[[int], None] | None = None,
) -> SelectResult:
    """Score every training record of ``config`` by ``by`` and write the best ``keep`` share (or count) to ``out_dir``."""
    keep, prefer = _check(config, by, keep, prefer)
    stage, data = config.finetuning.stage, config.data
    out = Path(out_dir)
    datasets: list[ScannedDataset] = [
        scan_dataset(n, dataset_dir=data.dataset_dir, stage=stage) for n in data.dataset or []
    ]
    records = [(r, ref) for d in datasets for r, ref in zip(d.records, d.refs)]
    meta = {
        "by": by,
        "model": config.model.model_name_or_path,
        "adapter": config.model.adapter_name_or_path,
        "template": data.template,
        "cutoff_len": data.cutoff_len,
        "stage": stage,
    }
    scores = _load_scores(out, meta)
    todo = [(r, ref) for r, ref in records if _key(ref) not in scores]
    result = SelectResult(out_dir=out, by=by, n_total=len(records), n_scored_now=len(todo))
    if todo:
        tools = _tools(config, by)
        progress = None
        if console is not None:
            from tunelab.evaluate.report import ProgressLine

            progress = ProgressLine(console, len(todo), f"scoring ({by})")
        with (out / "scores.jsonl").open("a", encoding="utf-8") as handle:
            for first in range(0, len(todo), batch_size):
                batch = todo[first : first + batch_size]
                for (_, ref), row in zip(
                    batch, _score_batch(by, [r for r, _ in batch], tools, stage, data.cutoff_len)
                ):
                    row = {"key": _key(ref), **ref.as_dict(), **row}
                    scores[row["key"]] = row
                    handle.write(json.dumps(row) + "\n")
                handle.flush()
                if progress is not None:
                    progress(len(batch))
                if on_batch is not None:
                    on_batch(len(batch))
    values = [(i, float(scores[_key(ref)]["score"])) for i, (_, ref) in enumerate(records)]
    n_keep = min(len(records), int(keep) if keep >= 1 else max(1, round(keep * len(records))))
    chosen = _rank(values, n_keep, by, prefer)
    finite = [s for _, s in values if not math.isnan(s)]
    kept_scores = [s for i, s in values if i in chosen and not math.isnan(s)]
    result.n_kept = len(chosen)
    result.mean_all = sum(finite) / len(finite) if finite else math.nan
    result.mean_kept = sum(kept_scores) / len(kept_scores) if kept_scores else math.nan
    _write_kept(datasets, {records[i][1] for i in chosen}, out, result)
    return result


def _write_kept(
    datasets: list[ScannedDataset], kept: set[RecordRef], out: Path, result: SelectResult
) -> None:
    """The chosen rows of each file, in their order and format, plus a dataset_info.json for them."""
    from tunelab.data.files import read_row_files

    registry = {}
    for d in datasets:
        assert d.attr.path is not None
        folder = d.attr.path.is_dir()
        n = 0
        for file, rows in read_row_files(d.attr.path):
            chosen = [row for index, row in enumerate(rows) if RecordRef(d.name, file, index) in kept]
            target = out / "data" / (Path(d.name).name if folder else "") / file.name
            write_rows(chosen, target, like=file)
            n += len(chosen)
            if not folder:
                registry[registry_name(d.name)] = registry_entry(d.attr, str(target.relative_to(out)))
        if folder:
            registry[registry_name(d.name)] = registry_entry(
                d.attr, str((out / "data" / Path(d.name).name).relative_to(out))
            )
        result.kept[d.name] = n
    (out / REGISTRY_FILE).write_text(
        json.dumps(registry, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
