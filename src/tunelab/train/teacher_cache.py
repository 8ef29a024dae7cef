"""Offline teacher for stage kd: the teacher's top-k log-probs per response token, stored once.

`tunelab data teacher-logits CFG -o DIR` runs the teacher over the config's train and eval splits
(tokenized exactly as the kd run will tokenize them) and writes ``DIR``:

    teacher_cache.json        what the cache was made from: teacher, template, cutoff_len, the
                              tokenizer's fingerprint, top-k, and a fingerprint of each split's tokens
    train-00000.safetensors   per shard of samples: log_probs (tokens x k, at temperature 1, sorted),
    eval-00000.safetensors    ids (tokens x k), label_log_probs (tokens; the teacher's NLL for
                              perplexity), offsets (samples + 1, token ranges per sample)

Shards are written whole (to a temporary name, then renamed), so an interrupted run resumes where
it stopped. ``kd_teacher_cache: DIR`` trains from it without loading the teacher and refuses a config
whose teacher, template, cutoff, tokenizer or data differ from what the cache was made with.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from tunelab.errors import ConfigError
from tunelab.runs.rundir import atomic_write_text

if TYPE_CHECKING:
    from tunelab.config import RunConfig

__all__ = ["MANIFEST", "TeacherCache", "data_fingerprint", "write_teacher_cache"]

MANIFEST = "teacher_cache.json"
_FORMAT = 1
_SHARD_SAMPLES = 256


def data_fingerprint(dataset: Any) -> str:
    """A fingerprint of a tokenized split (input_ids and labels, in order)."""
    digest = hashlib.sha256()
    for row in dataset:
        digest.update(json.dumps([row["input_ids"], row["labels"]]).encode())
    return digest.hexdigest()[:16]


def _identity(config: RunConfig, tokenizer: Any) -> dict[str, Any]:
    """The settings a cache is only valid for (compared field by field when it is used)."""
    from tunelab.infer.teacher import teacher_name, tokenizer_hash

    return {
        "teacher": teacher_name(config),
        "template": config.data.template,
        "cutoff_len": config.data.cutoff_len,
        "tokenizer": tokenizer_hash(tokenizer),
    }


@dataclass
class TeacherCache:
    """A finished teacher cache directory (see the module docstring)."""

    path: Path
    manifest: dict[str, Any]
    _shards: dict[tuple[str, int], dict[str, torch.Tensor]] = field(default_factory=dict, repr=False)

    @property
    def topk(self) -> int:
        return int(self.manifest["topk"])

    @property
    def teacher(self) -> str:
        return str(self.manifest["teacher"])

    @classmethod
    def open(cls, path: str | Path) -> TeacherCache:
        """The cache in ``path``; refuses a missing or unfinished one."""
        folder = Path(path)
        manifest_path = folder / MANIFEST
        if not manifest_path.is_file():
            raise ConfigError(
                f"kd_teacher_cache={folder}: no {MANIFEST} there",
                "write the cache first: tunelab data teacher-logits CFG -o DIR",
            )
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        if not manifest.get("complete"):
            raise ConfigError(
                f"kd_teacher_cache={folder} is unfinished (teacher-logits was interrupted)",
                "run the same `tunelab data teacher-logits ... -o DIR` again: it resumes",
            )
        return cls(folder, manifest)

    def check_config(self, config: RunConfig, tokenizer: Any) -> None:
        """Refuse a run whose teacher, template, cutoff, tokenizer or kd_topk the cache does not serve."""
        wanted = _identity(config, tokenizer)
        if not config.kd.teacher_model_name_or_path:
            wanted["teacher"] = self.teacher  # the cache stands in for the teacher
        problems = [
            f"{key}: cache {self.manifest.get(key)!r}, config {value!r}"
            for key, value in wanted.items()
            if self.manifest.get(key) != value
        ]
        if config.kd.kd_topk is not None and config.kd.kd_topk > self.topk:
            problems.append(f"kd_topk: cache holds the top {self.topk}, config asks for {config.kd.kd_topk}")
        if problems:
            raise ConfigError(
                f"kd_teacher_cache={self.path} was made for another setup: " + "; ".join(problems),
                "make a cache for this config (tunelab data teacher-logits CFG -o NEW_DIR) or change the "
                "config back",
            )

    def check_data(self, splits: dict[str, Any]) -> None:
        """Refuse splits whose tokens are not the ones the cache was made from (dataset, split or seed changed)."""
        for split, dataset in splits.items():
            if dataset is None:
                continue
            stored = self.manifest["splits"].get(split)
            if stored is None or stored["fingerprint"] != data_fingerprint(dataset):
                raise ConfigError(
                    f"kd_teacher_cache={self.path}: the {split} split differs from the one the cache was made "
                    "from (dataset, max_samples, val_size or seed changed)",
                    "make a new cache with this config: tunelab data teacher-logits CFG -o NEW_DIR",
                )

    def batch(
        self, split: str, rows: list[int], *, topk: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(log_probs, ids, label_log_probs) of the response tokens of ``rows``, concatenated in order."""
        k = topk or self.topk
        parts = [self._sample(split, row) for row in rows]
        log_probs = torch.cat([p["log_probs"][:, :k] for p in parts])
        ids = torch.cat([p["ids"][:, :k] for p in parts]).long()
        return log_probs, ids, torch.cat([p["label_log_probs"] for p in parts])

    def _sample(self, split: str, row: int) -> dict[str, torch.Tensor]:
        from safetensors.torch import load_file

        shard, index = divmod(row, int(self.manifest["shard_samples"]))
        key = (split, shard)
        if key not in self._shards:
            self._shards[key] = load_file(self.path / _shard_name(split, shard))
        tensors = self._shards[key]
        start, end = tensors["offsets"][index].item(), tensors["offsets"][index + 1].item()
        return {name: tensors[name][start:end] for name in ("log_probs", "ids", "label_log_probs")}


def _shard_name(split: str, shard: int) -> str:
    return f"{split}-{shard:05d}.safetensors"


def write_teacher_cache(
    config: RunConfig,
    out_dir: str | Path,
    *,
    topk: int | None = None,
    batch_size: int = 8,
    console: Any = None,
) -> Path:
    """Run the teacher over ``config``'s splits and store its top-k log-probs in ``out_dir`` (resumable)."""
    from rich.progress import Progress

    from tunelab.data.collator import build_collator
    from tunelab.data.pipeline import build_datasets
    from tunelab.infer.teacher import check_shared_vocabulary, load_teacher, teacher_name
    from tunelab.model import load_tokenizer

    k = topk or config.kd.kd_topk or 32
    out = Path(out_dir)
    tokenizer = load_tokenizer(config.model)
    train_set, eval_set, _ = build_datasets(config, tokenizer)
    splits = {name: ds for name, ds in (("train", train_set), ("eval", eval_set)) if ds is not None}
    manifest = {
        "format": _FORMAT,
        **_identity(config, tokenizer),
        "topk": k,
        "shard_samples": _SHARD_SAMPLES,
        "splits": {
            name: {"n_samples": len(ds), "fingerprint": data_fingerprint(ds)} for name, ds in splits.items()
        },
    }
    _start_manifest(out, manifest)
    engine = load_teacher(config)
    n_vocab = check_shared_vocabulary(
        tokenizer,
        engine.tokenizer,
        student_rows=len(tokenizer),
        teacher_rows=engine.model.get_output_embeddings().weight.shape[0],
        student_name=config.model.model_name_or_path,
        teacher_name=teacher_name(config),
    )
    collate = build_collator(tokenizer, packing=False)
    total = sum(len(ds) for ds in splits.values())
    with Progress(console=console, transient=False) as progress:
        task = progress.add_task(f"teacher top-{k} log-probs", total=total)
        for name, ds in splits.items():
            for shard in range(-(-len(ds) // _SHARD_SAMPLES)):
                rows = ds.select(range(shard * _SHARD_SAMPLES, min((shard + 1) * _SHARD_SAMPLES, len(ds))))
                target = out / _shard_name(name, shard)
                if not target.is_file():
                    _write_shard(engine.model, rows, collate, target, k, n_vocab, batch_size)
                progress.advance(task, len(rows))
    manifest["complete"] = True
    _write_json(out / MANIFEST, manifest)
    return out


@torch.inference_mode()
def _write_shard(
    teacher: Any, rows: Any, collate: Any, target: Path, k: int, n_vocab: int, batch_size: int
) -> None:
    from safetensors.torch import save_file

    from tunelab.train.kd_loss import head_logits
    from tunelab.train.kd_trainer import decoder_states

    head = teacher.get_output_embeddings()
    device = next(teacher.parameters()).device
    log_probs, ids, label_lp, offsets = [], [], [], [0]
    for start in range(0, len(rows), batch_size):
        batch = collate([rows[i] for i in range(start, min(start + batch_size, len(rows)))])
        batch = {key: value.to(device) for key, value in batch.items()}
        targets = batch["labels"][:, 1:]
        mask = targets != -100
        hidden = decoder_states(teacher, batch)[:, :-1]
        for row in range(hidden.shape[0]):
            full = torch.log_softmax(head_logits(head, hidden[row][mask[row]])[:, :n_vocab], dim=-1)
            values, top = full.topk(min(k, n_vocab), dim=-1)
            log_probs.append(values.cpu())
            ids.append(top.to(torch.int32).cpu())
            label_lp.append(full.gather(-1, targets[row][mask[row]][:, None])[:, 0].cpu())
            offsets.append(offsets[-1] + int(mask[row].sum()))
    tensors = {
        "log_probs": torch.cat(log_probs).contiguous(),
        "ids": torch.cat(ids).contiguous(),
        "label_log_probs": torch.cat(label_lp).contiguous(),
        "offsets": torch.tensor(offsets, dtype=torch.int64),
    }
    partial = target.with_suffix(".partial")
    save_file(tensors, str(partial))
    os.replace(partial, target)


def _start_manifest(out: Path, manifest: dict[str, Any]) -> None:
    """Create ``out`` with its manifest, or check that an existing (partial) cache is for the same setup."""
    path = out / MANIFEST
    if path.is_file():
        existing = json.loads(path.read_text(encoding="utf-8"))
        existing.pop("complete", None)
        if existing != manifest:
            differ = sorted(key for key in manifest if existing.get(key) != manifest[key])
            raise ConfigError(
                f"{out} already holds a teacher cache made with other settings ({', '.join(differ)})",
                "choose another -o DIR, or delete that directory to start over",
            )
        return
    out.mkdir(parents=True, exist_ok=True)
    _write_json(path, manifest)


def _write_json(path: Path, payload: Any) -> None:
    atomic_write_text(path, json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
