"""Batched generation with a chat template: the engine behind demo answers, eval and chat."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from tunelab.config import GenerationArgs

__all__ = ["generate_answers"]


@torch.inference_mode()
def generate_answers(
    model: Any,
    tokenizer: Any,
    template: Any,
    questions: Sequence[str],
    generation: GenerationArgs,
    *,
    system: str = "",
    batch_size: int = 8,
) -> list[str]:
    """Answer each question as a single-turn chat; left padding so a batch generates together."""
    model.eval()
    stop_ids = template.stop_token_ids(tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stop_ids[0]
    answers: list[str] = []
    for start in range(0, len(questions), batch_size):
        prompts = [
            template.encode_prompt(tokenizer, [{"role": "user", "content": q}], system, "")
            for q in questions[start : start + batch_size]
        ]
        width = max(len(p) for p in prompts)
        input_ids = torch.tensor([[pad_id] * (width - len(p)) + p for p in prompts])
        attention = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
        device = next(model.parameters()).device
        output = model.generate(
            input_ids=input_ids.to(device),
            attention_mask=attention.to(device),
            max_new_tokens=generation.max_new_tokens,
            do_sample=generation.do_sample,
            temperature=generation.temperature if generation.do_sample else None,
            top_p=generation.top_p if generation.do_sample else None,
            top_k=generation.top_k if generation.do_sample else None,
            num_beams=generation.num_beams,
            repetition_penalty=generation.repetition_penalty,
            eos_token_id=stop_ids,
            pad_token_id=pad_id,
        )
        for row in output[:, width:].tolist():
            answers.append(_decode_until_stop(tokenizer, row, stop_ids, pad_id))
    return answers


def _decode_until_stop(tokenizer: Any, ids: list[int], stop_ids: Sequence[int], pad_id: int | None) -> str:
    cut = next((i for i, tok in enumerate(ids) if tok in stop_ids), len(ids))
    return tokenizer.decode(ids[:cut], skip_special_tokens=True).strip()
