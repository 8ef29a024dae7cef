"""Training-side companion of :mod:`tunelab.model.value_head`: keep the saved head in step with the model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

from tunelab.model.value_head import VALUE_HEAD_FILE

__all__ = ["BestValueHeadCallback"]


class BestValueHeadCallback(TrainerCallback):
    """With load_best_model_at_end the Trainer reloads the best checkpoint's model weights; this reloads
    the value head saved beside them, so the head saved at the end matches the model."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        best = state.best_model_checkpoint
        if args.load_best_model_at_end and best and (Path(best) / VALUE_HEAD_FILE).is_file():
            from safetensors.torch import load_file

            self.model.v_head.load_state_dict(load_file(str(Path(best) / VALUE_HEAD_FILE)))
