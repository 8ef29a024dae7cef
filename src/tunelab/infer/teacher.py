"""The teacher of stage kd: which model it is, loading it frozen, and checking it shares the student's vocabulary.

The teacher resolves like every model tunelab loads (``infer.source``): a model directory, a .gguf,
``smollm2``, ``tiny:<preset>``, or a run directory whose adapter is applied (and merged: the frozen
teacher only runs forward passes, so the adapter's extra matmuls would be pure cost).
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from tunelab.errors import ModelError

if TYPE_CHECKING:
    from tunelab.config import RunConfig
    from tunelab.infer.engine import ChatEngine

__all__ = ["check_shared_vocabulary", "load_teacher", "teacher_config", "teacher_name", "tokenizer_hash"]

_SEQ_KD_HINT = (
    "logit distillation compares the two models token by token, so both need the same tokenizer; for "
    "teachers with another vocabulary use sequence-level distillation: `tunelab data distill-responses "
    "CFG -o FILE` lets the teacher answer the prompts, then train the student with stage sft on FILE"
)


def teacher_name(config: RunConfig) -> str:
    """How the teacher is named in logs, caches and model cards."""
    kd = config.kd
    name = kd.teacher_model_name_or_path or "(cached)"
    if kd.teacher_adapter_name_or_path:
        name += " + " + ",".join(kd.teacher_adapter_name_or_path)
    return name


def teacher_config(config: RunConfig) -> RunConfig:
    """The config that loads the teacher: a run directory brings its own, else the student's template."""
    from tunelab.infer.source import is_run_dir, resolve_config

    kd = config.kd
    if not kd.teacher_model_name_or_path:
        raise ModelError(
            "no teacher_model_name_or_path is set", "set it to the teacher model or run directory"
        )
    overrides = [f"compute_type={kd.teacher_compute_type or config.compute_type}"]
    if config.model.cache_dir:
        overrides.append(f"cache_dir={config.model.cache_dir}")
    adapters = kd.teacher_adapter_name_or_path
    if is_run_dir(kd.teacher_model_name_or_path):
        resolved = resolve_config(run=kd.teacher_model_name_or_path, overrides=overrides)
        if adapters:  # stacked on top of the run's own weights
            stacked = [*(resolved.model.adapter_name_or_path or []), *adapters]
            resolved = resolved.model_copy(
                update={"model": resolved.model.model_copy(update={"adapter_name_or_path": stacked})}
            )
        return resolved
    if config.data.template:
        overrides.append(f"template={config.data.template}")
    return resolve_config(None, overrides, model=kd.teacher_model_name_or_path, adapter=adapters)


def load_teacher(config: RunConfig) -> ChatEngine:
    """The frozen teacher (adapters merged) with its tokenizer and template, in teacher_compute_type."""
    from tunelab.infer.engine import load_engine

    engine = load_engine(teacher_config(config), name=teacher_name(config))
    _check_plain_head(engine.model)
    return engine


def _check_plain_head(model: Any) -> None:
    """Refuse models whose logits are more than lm_head(hidden): the chunked loss applies lm_head itself."""
    cfg = model.config
    for key in ("final_logit_softcapping", "logit_scale"):
        if getattr(cfg, key, None):
            raise ModelError(
                f"{type(model).__name__} post-processes its logits ({key}={getattr(cfg, key)}), which stage kd "
                "does not reproduce yet",
                "distil through sequence-level distillation (`tunelab data distill-responses`) instead",
            )


def tokenizer_hash(tokenizer: Any) -> str:
    """A short fingerprint of a tokenizer's vocabulary (token -> id) and special tokens."""
    payload = json.dumps(
        [sorted(tokenizer.get_vocab().items()), sorted(map(str, tokenizer.all_special_tokens))],
        ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


def check_shared_vocabulary(
    student_tokenizer: Any,
    teacher_tokenizer: Any,
    *,
    student_rows: int,
    teacher_rows: int,
    student_name: str,
    teacher_name: str,
) -> int:
    """The number of leading logit rows both models share, or a ModelError when their vocabularies differ.

    ``*_rows`` are the models' output sizes, often larger than the tokenizer (embeddings padded to a
    multiple of 64/128): the padded rows belong to no token, so the logits are cut to the shared part.
    """
    student_vocab, teacher_vocab = student_tokenizer.get_vocab(), teacher_tokenizer.get_vocab()
    if student_vocab != teacher_vocab:
        differ = sorted(set(student_vocab.items()) ^ set(teacher_vocab.items()), key=str)[:3]
        raise ModelError(
            f"teacher {teacher_name} ({len(teacher_vocab):,} tokens) and student {student_name} "
            f"({len(student_vocab):,} tokens) have different vocabularies (e.g. {differ})",
            _SEQ_KD_HINT,
        )
    shared = min(student_rows, teacher_rows)
    if shared < len(student_vocab):
        raise ModelError(
            f"the {'student' if student_rows < teacher_rows else 'teacher'} has {shared:,} output rows, fewer "
            f"than its tokenizer's {len(student_vocab):,} tokens",
            "check that the model directory's tokenizer belongs to its weights",
        )
    return shared
