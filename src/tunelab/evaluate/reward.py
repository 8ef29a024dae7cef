"""Score text with a reward model trained by ``stage: rm`` (the Python API behind reward evaluation and ppo).

Example::

    from tunelab.evaluate.reward import load_reward_model, score_replies
    score_replies("runs/rm-lora-tiny", ["What is 2 + 3?"], ["Sure! 2 + 3 = 5."])   # -> [1.73]
    rm = load_reward_model("runs/rm-lora-tiny")          # load once, score many times
    rm.score_replies(["What is 2 + 3?"] * 2, ["Sure! 2 + 3 = 5.", "Ugh, 6. Go away."])

``score_replies`` renders each prompt and reply with the reward model's own chat template, as in
training; ``score_texts`` scores strings that are already in the model's chat format.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tunelab.model.reward import Prompt, RewardModel, load_reward_model

__all__ = ["RewardModel", "load_reward_model", "score_replies", "score_texts"]


def score_texts(run_dir: str | Path, texts: Sequence[str], *, batch_size: int = 8) -> list[float]:
    """Load the reward model in ``run_dir`` and score ``texts`` (already in its chat format)."""
    return load_reward_model(run_dir).score_texts(texts, batch_size=batch_size)


def score_replies(
    run_dir: str | Path, prompts: Sequence[Prompt], replies: Sequence[str], *, batch_size: int = 8
) -> list[float]:
    """Load the reward model in ``run_dir`` and score each reply to its prompt (see the module docstring)."""
    return load_reward_model(run_dir).score_replies(prompts, replies, batch_size=batch_size)
