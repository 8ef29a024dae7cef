"""Load a reward model trained by ``stage: rm``: the causal LM, its value head, tokenizer and template.

It lives in ``model/`` (not ``evaluate/``) because both reward evaluation and the ppo stage load it:
training and evaluation then depend on it, not on each other. The public API stays
:mod:`tunelab.evaluate.reward`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tunelab.config.schema import ADAPTER_TYPES
from tunelab.errors import ModelError
from tunelab.model.value_head import last_token_scores, load_value_head

__all__ = ["Prompt", "RewardModel", "load_reward_model"]

Prompt = str | list[dict[str, str]]  # a user message, or a conversation ending with the user's turn


@dataclass
class RewardModel:
    """A loaded reward model: the causal LM with its value head, tokenizer, chat template and cutoff."""

    model: Any
    tokenizer: Any
    template: Any
    cutoff_len: int

    @torch.inference_mode()
    def score_ids(self, sequences: Sequence[Sequence[int]], *, batch_size: int = 8) -> list[float]:
        """One score per token sequence (each scored at its last token)."""
        device = next(self.model.parameters()).device
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        scores: list[float] = []
        for start in range(0, len(sequences), batch_size):
            chunk = [list(ids) for ids in sequences[start : start + batch_size]]
            width = max(len(ids) for ids in chunk)
            input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids in chunk], device=device)
            mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids in chunk], device=device)
            scores += last_token_scores(self.model, input_ids, mask).float().cpu().tolist()
        return scores

    def score_texts(self, texts: Sequence[str], *, batch_size: int = 8) -> list[float]:
        """Scores of texts already in the chat format (e.g. a rendered prompt plus its reply)."""
        ids = [self.tokenizer.encode(text, add_special_tokens=False)[-self.cutoff_len :] for text in texts]
        if any(not seq for seq in ids):
            raise ModelError("cannot score an empty text", "pass non-empty texts")
        return self.score_ids(ids, batch_size=batch_size)

    def score_replies(
        self,
        prompts: Sequence[Prompt],
        replies: Sequence[str],
        *,
        systems: Sequence[str] | None = None,
        batch_size: int = 8,
    ) -> list[float]:
        """Scores of ``replies`` to ``prompts``, rendered with the reward model's template and cut as in training."""
        from tunelab.data.tokenize_pref import encode_reply, split_budget

        if len(prompts) != len(replies):
            raise ModelError(
                f"{len(prompts)} prompts but {len(replies)} replies", "pass one reply per prompt"
            )
        sequences = []
        for i, (prompt, reply) in enumerate(zip(prompts, replies)):
            messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
            system = systems[i] if systems is not None else ""
            prompt_ids, reply_ids = encode_reply(messages, reply, self.tokenizer, self.template, system)
            keep_prompt, keep_reply = split_budget(len(prompt_ids), len(reply_ids), self.cutoff_len)
            sequences.append(prompt_ids[len(prompt_ids) - keep_prompt :] + reply_ids[:keep_reply])
        return self.score_ids(sequences, batch_size=batch_size)


def load_reward_model(run_dir: str | Path, *, compute_dtype: torch.dtype | None = None) -> RewardModel:
    """The reward model of a finished ``stage: rm`` run directory (or one of its checkpoints' run)."""
    from tunelab.config import load_config
    from tunelab.data.template import template_for
    from tunelab.model import (
        apply_finetuning,
        load_adapters,
        load_model,
        load_tokenizer,
        resolve_compute_dtype,
    )

    run_dir = Path(run_dir)
    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        raise ModelError(
            f"reward model {run_dir}: no config.yaml there",
            "point reward_model at the run directory of a `stage: rm` run (runs/<name>)",
        )
    config = load_config(config_path)
    if config.finetuning.stage != "rm":
        raise ModelError(
            f"reward model {run_dir} was trained with stage: {config.finetuning.stage}, not rm",
            "train a reward model first (stage: rm on pairwise data) and use its run directory",
        )
    dtype = compute_dtype if compute_dtype is not None else resolve_compute_dtype(config.compute_type)
    tokenizer = load_tokenizer(config.model)  # the tokenizer the reward model was trained with
    if config.finetuning.finetuning_type in ADAPTER_TYPES:
        base = config.model.model_copy(update={"adapter_name_or_path": None})
        model = load_model(base, compute_dtype=dtype, model_max_length=config.data.cutoff_len)
        earlier = (config.model.adapter_name_or_path or [])[:-1]  # merged before the rm adapter was trained
        model = load_adapters(model, [*earlier, str(run_dir)], is_trainable=False)
    else:
        weights = config.model.model_copy(
            update={"model_name_or_path": str(run_dir), "adapter_name_or_path": None}
        )
        model = load_model(weights, compute_dtype=dtype, model_max_length=config.data.cutoff_len)
    model = apply_finetuning(model, config.finetuning, is_trainable=False)
    load_value_head(model, run_dir).requires_grad_(False)
    template = template_for(config.data, tokenizer)
    return RewardModel(model=model, tokenizer=tokenizer, template=template, cutoff_len=config.data.cutoff_len)
