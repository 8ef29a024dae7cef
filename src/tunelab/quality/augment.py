"""``tunelab data augment``: more training records from the ones there are, each marked with its origin.

Methods: ``paraphrase`` and ``back_translate`` (zh <-> en) by a language model — the config's own
model through tunelab's engine, another local model (``generator``), or any OpenAI-compatible
endpoint (``api_base``); ``eda`` (random swap/deletion, synonyms where installed) for
classification data. Each new row carries ``augmented_from`` ("dataset#index") and
``augment_method``.

Augmented copies of an eval record must never reach training: when the config splits eval (or
test) records off with val_size/test_size, that split is taken first, exactly as a run would take
it, only training records are augmented, and the held-out records are written to a file of their
own (dataset ``<name>_eval``), so that the run uses ``eval_dataset: <name>_eval`` and
``val_size: 0`` instead of splitting the augmented data again. Progress is appended record by
record to augment_progress.jsonl, so an interrupted run resumes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunelab.data.files import read_row_files
from tunelab.data.registry import REGISTRY_FILE
from tunelab.errors import ConfigError
from tunelab.quality.check import split_positions
from tunelab.quality.eda import eda_variants, synonym_source
from tunelab.quality.rewrite import back_translate_prompts, paraphrase_prompt, translate_prompt
from tunelab.quality.rows import row_prompt, with_prompt
from tunelab.quality.scan import RecordRef, scan_dataset
from tunelab.quality.textkey import normalize
from tunelab.quality.writer import registry_entry, registry_name, train_hint, write_rows

if TYPE_CHECKING:
    from tunelab.config import RunConfig

__all__ = ["METHODS", "AugmentResult", "augment_data"]

METHODS = ("paraphrase", "back_translate", "eda")


@dataclass
class AugmentResult:
    """How many rows were added, where they went, and what the run config should say."""

    out_dir: Path
    method: str
    n_original: int = 0
    n_added: int = 0
    n_done_now: int = 0
    held_out: dict[str, int] = field(default_factory=dict)  # dataset -> eval/test rows written apart
    notes: list[str] = field(default_factory=list)

    names: list[str] = field(default_factory=list)  # the config's dataset names

    @property
    def config_hint(self) -> str:
        hint = train_hint(self.names, self.out_dir)
        if self.held_out:
            held = ",".join(f"{registry_name(n)}_eval" for n in self.held_out)
            hint += f" eval_dataset={held} val_size=0 test_size=0"
        return hint


def _variants(method: str, texts: list[str], n: int, seed: int, rewriter: Any) -> list[list[str]]:
    """Up to ``n`` new versions of each text, none empty, none equal to its text or to each other."""
    if method == "eda":
        raw = [eda_variants(text, n, seed=seed) for text in texts]
    else:
        raw = [[] for _ in texts]
        for k in range(n):
            if method == "paraphrase":
                outs = rewriter.complete([paraphrase_prompt(t) for t in texts], seed=seed + k)
            else:
                pivots = [back_translate_prompts(t) for t in texts]
                there = rewriter.complete(
                    [translate_prompt(t, p) for t, (p, _) in zip(texts, pivots)], seed=seed + k
                )
                outs = rewriter.complete(
                    [translate_prompt(t, s) for t, (_, s) in zip(there, pivots)], seed=seed + k
                )
            for bucket, out in zip(raw, outs):
                bucket.append(out)
    kept = []
    for text, outs in zip(texts, raw):
        seen, mine = {normalize(text)}, []
        for out in outs:
            if out.strip() and normalize(out) not in seen:
                seen.add(normalize(out))
                mine.append(out)
        kept.append(mine)
    return kept


def _progress(out: Path, meta: dict[str, Any]) -> dict[str, list[str]]:
    meta_path, path = out / "augment.meta.json", out / "augment_progress.jsonl"
    if meta_path.is_file() and json.loads(meta_path.read_text()) != meta:
        raise ConfigError(
            f"{out} holds an augmentation made with other settings",
            "choose another -o folder, or delete augment_progress.jsonl there to start again",
        )
    out.mkdir(parents=True, exist_ok=True)
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    done: dict[str, list[str]] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # a line cut by an interruption: that record is redone
                continue
            done[row["key"]] = row["variants"]
    return done


def augment_data(
    config: RunConfig,
    out_dir: str | Path,
    *,
    method: str,
    n: int = 1,
    rewriter: Any = None,
    batch_size: int = 8,
    console: Any = None,
    on_batch: Callable[[int], None] | None = None,
) -> AugmentResult:
    """Add up to ``n`` augmented copies of every training record of ``config``; write the result to ``out_dir``.

    ``rewriter`` (an :class:`~tunelab.quality.rewrite.EngineRewriter` or ``ApiRewriter``) is
    needed for paraphrase and back_translate; see the module docstring for the eval split.
    """
    stage, data = config.finetuning.stage, config.data
    if method not in METHODS:
        raise ConfigError(f"--method {method}: unknown", f"choose from {', '.join(METHODS)}")
    if method == "eda" and stage != "cls":
        raise ConfigError(
            f"--method eda edits words at random, which keeps a class label but can change what an "
            f"instruction asks; the config's stage is {stage}",
            "use eda for stage cls data; use --method paraphrase or back_translate for other data",
        )
    if method != "eda" and rewriter is None:
        raise ConfigError(f"--method {method} needs a model", "give --model or --api-base")
    if n < 1:
        raise ConfigError(f"-n {n}: must be at least 1", "e.g. -n 2 for two new copies per record")
    out = Path(out_dir)
    datasets = [scan_dataset(name, dataset_dir=data.dataset_dir, stage=stage) for name in data.dataset or []]
    refs = [ref for d in datasets for ref in d.refs]
    held: set[RecordRef] = set()
    if not data.eval_dataset and (data.val_size > 0 or data.test_size > 0):
        split = split_positions(config, datasets, [])
        held = {refs[i] for name in ("eval", "test") for i in split.get(name, [])}
    meta = {"method": method, "n": n, "seed": config.training.seed, "model": getattr(rewriter, "name", None)}
    done = _progress(out, meta)
    result = AugmentResult(out_dir=out, method=method, names=list(data.dataset or []))
    if method == "eda" and synonym_source() is None:
        result.notes.append(
            "no synonym source installed (nltk + wordnet corpus): eda used swap and deletion only"
        )
    rows_of = {d.name: dict(read_row_files(d.attr.path)) for d in datasets}  # type: ignore[arg-type]
    todo = [
        ref
        for d in datasets
        for ref in d.refs
        if ref not in held and f"{ref.dataset}#{ref.index}@{ref.file.name}" not in done
    ]
    result.n_done_now = len(todo)
    bar = None
    if console is not None and todo:
        from tunelab.evaluate.report import ProgressLine

        bar = ProgressLine(console, len(todo), f"augmenting ({method})")
    with (out / "augment_progress.jsonl").open("a", encoding="utf-8") as handle:
        for first in range(0, len(todo), batch_size):
            batch = todo[first : first + batch_size]
            attrs = {d.name: d.attr for d in datasets}
            texts = [row_prompt(rows_of[r.dataset][r.file][r.index], attrs[r.dataset]) for r in batch]
            for ref, variants in zip(batch, _variants(method, texts, n, config.training.seed, rewriter)):
                key = f"{ref.dataset}#{ref.index}@{ref.file.name}"
                done[key] = variants
                handle.write(json.dumps({"key": key, "variants": variants}, ensure_ascii=False) + "\n")
            handle.flush()
            if bar is not None:
                bar(len(batch))
            if on_batch is not None:
                on_batch(len(batch))
    _write(datasets, rows_of, held, done, out, result)
    return result


def _write(
    datasets: list[Any],
    rows_of: dict[str, Any],
    held: set[RecordRef],
    done: dict[str, list[str]],
    out: Path,
    result: AugmentResult,
) -> None:
    registry: dict[str, Any] = {}
    for d in datasets:
        good = set(d.refs)
        train_rows, held_rows = [], []
        for file, rows in rows_of[d.name].items():
            for index, row in enumerate(rows):
                ref = RecordRef(d.name, file, index)
                if ref not in good:
                    continue
                if ref in held:
                    held_rows.append(row)
                    continue
                train_rows.append(row)
                result.n_original += 1
                for text in done.get(f"{d.name}#{index}@{file.name}", []):
                    origin = {"augmented_from": f"{d.name}#{index}", "augment_method": result.method}
                    train_rows.append(with_prompt(row, d.attr, text, **origin))
                    result.n_added += 1
        like = d.files[0]
        target = out / "data" / f"{Path(d.name).name}{like.suffix}"
        write_rows(train_rows, target, like=like)
        registry[registry_name(d.name)] = registry_entry(d.attr, str(target.relative_to(out)))
        if held_rows:
            held_path = out / "data" / f"{Path(d.name).name}_eval{like.suffix}"
            write_rows(held_rows, held_path, like=like)
            registry[f"{registry_name(d.name)}_eval"] = registry_entry(
                d.attr, str(held_path.relative_to(out))
            )
            result.held_out[d.name] = len(held_rows)
        if d.malformed:
            result.notes.append(
                f"{d.name}: {len(d.malformed)} malformed rows left out (see `tunelab data check`)"
            )
    (out / REGISTRY_FILE).write_text(
        json.dumps(registry, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
