"""Generate an answer for every eval record and score it: generated_predictions.jsonl + BLEU/ROUGE.

The file has one JSON object per record, in record order: {"prompt", "label", "predict"} — the same
fields LLaMA-Factory writes, so existing scripts read it. "prompt" is the exact model input, template
tokens included, so a surprising answer can be traced to what the model actually saw.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tunelab.errors import ConfigError
from tunelab.evaluate.text_metrics import score_generations

__all__ = ["predict_records", "write_predictions"]


def predict_records(
    engine: Any,
    records: Sequence[dict[str, Any]],
    *,
    batch_size: int = 8,
    progress: Callable[[int], Any] | None = None,
) -> list[dict[str, str]]:
    """One {"prompt", "label", "predict"} row per record.

    The label is the record's final assistant message (sft), or its `chosen` answer (preference
    records of rm/dpo, whose messages hold the prompt only).

    Records are generated longest-first so each left-padded batch wastes little on padding; the rows
    come back in record order.
    """
    prompts, labels = [], []
    for index, record in enumerate(records):
        messages = list(record.get("messages") or [])
        if messages and messages[-1]["role"] in ("assistant", "function"):
            labels.append(messages[-1]["content"])
        elif messages and record.get("chosen"):
            labels.append(record["chosen"])
        else:
            raise ConfigError(
                f"predict_with_generate: record {record.get('source') or index} has no reference answer "
                "(no final assistant message, no chosen answer)",
                "predict needs conversation records (stage sft, or preference pairs); use the loss alone for stage pt",
            )
        prompts.append(
            engine.encode_chat(messages, system=record.get("system") or None, tools=record.get("tools") or "")
        )
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    replies = engine.generate([prompts[i] for i in order], batch_size=batch_size, progress=progress)
    texts = [""] * len(prompts)
    for i, reply in zip(order, replies):
        texts[i] = reply.text
    return [
        {
            "prompt": engine.tokenizer.decode(prompt, skip_special_tokens=False),
            "label": label,
            "predict": text,
        }
        for prompt, label, text in zip(prompts, labels, texts)
    ]


def write_predictions(path: Path, rows: Sequence[dict[str, str]]) -> dict[str, float]:
    """Write generated_predictions.jsonl and return the predict_* metrics (bleu-4, rouge-1/2/l)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    scores = score_generations([r["predict"] for r in rows], [r["label"] for r in rows])
    return {f"predict_{key}": value for key, value in scores.items()} | {"predict_samples": float(len(rows))}
