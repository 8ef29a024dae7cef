"""A value head on a causal LM: one linear score read from the last hidden state (rm scores, ppo values).

The head is attached to the model as the submodule ``v_head``, so the optimizer, gradient clipping
and ``count_parameters`` see it like any other trainable weight. It is detached while the model is
saved: the run directory then holds exactly what an sft run would (adapter or full weights) plus
``value_head.safetensors`` beside it, the layout LLaMA-Factory uses, and the model still loads as
a plain causal LM anywhere.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from pathlib import Path

import torch

from tunelab.distributed import unwrap
from tunelab.errors import ModelError

__all__ = [
    "VALUE_HEAD_FILE",
    "ValueHead",
    "attach_value_head",
    "last_token_scores",
    "load_value_head",
    "value_head_detached",
]

VALUE_HEAD_FILE = "value_head.safetensors"


class ValueHead(torch.nn.Module):
    """``Linear(hidden_size, 1)`` in fp32: one scalar per position."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.summary = torch.nn.Linear(hidden_size, 1)
        # small random weights, so an untrained reward model scores at chance rather than all ties
        torch.nn.init.normal_(self.summary.weight, std=1.0 / math.sqrt(hidden_size + 1))
        torch.nn.init.zeros_(self.summary.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.summary(hidden.to(self.summary.weight.dtype)).squeeze(-1)

    def save(self, directory: str | Path) -> Path:
        """Write the head's weights to ``directory/value_head.safetensors``."""
        from safetensors.torch import save_file

        path = Path(directory) / VALUE_HEAD_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}, str(path))
        return path


def _hidden_size(model: torch.nn.Module) -> int:
    config = model.config
    return int(
        config.get_text_config().hidden_size if hasattr(config, "get_text_config") else config.hidden_size
    )


def attach_value_head(model: torch.nn.Module) -> ValueHead:
    """A new trainable head attached to ``model`` as ``model.v_head`` (on the model's device)."""
    head = ValueHead(_hidden_size(model)).to(next(model.parameters()).device)
    model.v_head = head
    return head


def load_value_head(model: torch.nn.Module, directory: str | Path) -> ValueHead:
    """Attach the head saved in ``directory`` to ``model``; ModelError when there is none."""
    from safetensors.torch import load_file

    path = Path(directory) / VALUE_HEAD_FILE
    if not path.is_file():
        raise ModelError(
            f"{directory} has no {VALUE_HEAD_FILE}: it is not the output of a reward-model run",
            "train one with stage: rm and use its run directory (or one of its checkpoint-* folders)",
        )
    head = attach_value_head(model)
    try:
        head.load_state_dict(load_file(str(path)))
    except RuntimeError as err:
        raise ModelError(
            f"{path} does not fit this model: {err}", "use the reward model's own base model"
        ) from err
    return head


@contextlib.contextmanager
def value_head_detached(model: torch.nn.Module) -> Iterator[ValueHead | None]:
    """Take ``model.v_head`` off inside the block (so saving writes the bare model), then put it back."""
    head = dict(model.named_children()).get("v_head")  # the model's own child, not a wrapped one's
    if head is not None:
        del model.v_head
    try:
        yield head  # type: ignore[misc]
    finally:
        if head is not None:
            model.v_head = head


def last_token_scores(
    model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> torch.Tensor:
    """``model.v_head`` applied to the last attended position of every row: one score per sequence."""
    out = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        output_hidden_states=True,
        use_cache=False,
        logits_to_keep=1,  # the scores need hidden states only: skip the vocabulary projection
    )
    hidden = out.hidden_states[-1]
    positions = torch.arange(input_ids.size(1), device=input_ids.device)
    last = (attention_mask * positions).argmax(dim=-1)
    rows = torch.arange(input_ids.size(0), device=input_ids.device)
    return unwrap(model).v_head(hidden[rows, last])  # (under DDP ``model`` is the wrapper)
