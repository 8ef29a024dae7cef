"""On-policy steps of stage kd (GKD, Agarwal et al. 2024): the student answers the batch's prompts itself.

With ``kd_on_policy_ratio`` = lambda (TRL's GKD calls it ``lmbda``), that share of optimizer steps
replaces each batch's reference responses by responses the student samples, with the run's generation
settings (do_sample, temperature, top_p, top_k, repetition_penalty) and at most ``kd_max_new_tokens``
tokens, within cutoff_len. The teacher then scores the student's own tokens and the loss is the KD loss
over the generated tokens alone: there is no reference answer to take a cross-entropy on. This is what
fixes the train/inference mismatch of off-policy KD (the student learns to recover from its own mistakes).

A step is on-policy or not by (seed, step) alone, and its samples come from a generator seeded by
(seed, step, micro-batch, rank), so a resumed run replays the same choices and the same responses.
The choice is per optimizer step, so the micro-batches of one accumulated step are all of one kind and
each keeps its share of the gradient.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from tunelab.config.schema_train import GenerationArgs

__all__ = ["OnPolicySampler", "is_on_policy_step", "prompts_of", "until_stop"]

IGNORE_INDEX = -100


def is_on_policy_step(seed: int, step: int, ratio: float) -> bool:
    """Whether optimizer step ``step`` is on-policy: true for a ``ratio`` share of steps, fixed by the seed."""
    if ratio <= 0:
        return False
    if ratio >= 1:
        return True
    # a string seed goes through SHA-512: the same on every machine and under every PYTHONHASHSEED
    return random.Random(f"kd-on-policy:{seed}:{step}").random() < ratio


def prompts_of(
    input_ids: torch.Tensor, labels: torch.Tensor, attention_mask: torch.Tensor
) -> list[list[int]]:
    """Each right-padded row's prompt: its tokens before the last response (the last run of labels).

    In a multi-turn row the earlier turns, answers included, stay in the prompt, so the student
    answers the last question in its context.
    """
    prompts = []
    for ids, row_labels, n in zip(input_ids.tolist(), labels.tolist(), attention_mask.sum(-1).tolist()):
        start = n
        supervised = [i for i in range(n) if row_labels[i] != IGNORE_INDEX]
        if supervised:
            start = supervised[-1]
            while start > 0 and row_labels[start - 1] != IGNORE_INDEX:
                start -= 1
        prompts.append(ids[: max(start, 1)])
    return prompts


def until_stop(tokens: Sequence[int], stop_ids: Sequence[int]) -> list[int]:
    """``tokens`` up to and including the first stop token."""
    for i, token in enumerate(tokens):
        if token in stop_ids:
            return list(tokens[: i + 1])
    return list(tokens)


@dataclass(frozen=True)
class OnPolicySampler:
    """Decides which steps are on-policy and turns a batch into the student's own responses."""

    ratio: float
    seed: int
    generation: GenerationArgs
    max_new_tokens: int
    cutoff_len: int
    stop_ids: tuple[int, ...]
    pad_token_id: int

    def is_on(self, step: int) -> bool:
        return is_on_policy_step(self.seed, step, self.ratio)

    @torch.no_grad()
    def rollout(
        self,
        model: Any,
        inputs: dict[str, Any],
        collate: Callable[[list[dict[str, Any]]], dict[str, Any]],
        *,
        step: int,
        micro: int = 0,
        rank: int = 0,
    ) -> dict[str, Any]:
        """The batch with each row's response replaced by one ``model`` samples; labels on those tokens only.

        ``collate`` pads the new rows as the stage's collator pads every batch (right, labels -100).
        """
        prompts = prompts_of(inputs["input_ids"], inputs["labels"], inputs["attention_mask"])
        device = inputs["input_ids"].device
        width = max(len(p) for p in prompts)
        ids = torch.tensor([[self.pad_token_id] * (width - len(p)) + p for p in prompts], device=device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
        g = self.generation
        sampling = (
            {"do_sample": True, "temperature": g.temperature, "top_p": g.top_p, "top_k": g.top_k}
            if g.do_sample
            else {"do_sample": False}
        )
        seed = random.Random(f"kd-sample:{self.seed}:{step}:{micro}:{rank}").getrandbits(63)
        devices = [device.index or 0] if device.type == "cuda" else []
        was_training = model.training
        model.eval()  # no dropout while sampling (the update's own forward runs in train mode again)
        try:
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(seed)
                output = model.generate(
                    input_ids=ids,
                    attention_mask=mask,
                    max_new_tokens=max(1, min(self.max_new_tokens, self.cutoff_len - width)),
                    repetition_penalty=g.repetition_penalty,
                    eos_token_id=list(self.stop_ids),
                    pad_token_id=self.pad_token_id,
                    use_cache=True,
                    **sampling,
                )
        finally:
            model.train(was_training)
        rows = []
        for prompt, response in zip(prompts, output[:, width:].tolist()):
            answer = until_stop(response, self.stop_ids)
            rows.append({"input_ids": prompt + answer, "labels": [IGNORE_INDEX] * len(prompt) + answer})
        return {k: v.to(device) if torch.is_tensor(v) else v for k, v in collate(rows).items()}
