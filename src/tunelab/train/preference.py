"""What the preference stages (rm, dpo, kto, ppo) share: loading, log-probabilities, reference, metrics.

Why not TRL's trainer classes? TRL 1.16's DPOTrainer, KTOTrainer and RewardTrainer tokenize from
text or the tokenizer's own chat template (tunelab's templates and cutoff rules must decide the
tokens, as for sft), DPOTrainer has no orpo/simpo, there is no PPOTrainer in 1.16, and every TRL
trainer sends a telemetry request when it is built (tunelab runs offline). So the stages train on
:class:`TunelabTrainer` (our optimizers and schedules for free) with TRL's public data collators and
``selective_log_softmax``, and compute the published losses in a few readable lines each.

Reference model, as in TRL and LLaMA-Factory but without a second copy of the weights:

- LoRA with a fresh adapter: the adapter-disabled model *is* the frozen base (``reference_mode``);
- everything else (full, freeze, a loaded or PiSSA-initialised adapter): the reference log-probs
  are computed once before training from the untouched model (``add_reference_columns``).
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import torch

from tunelab.config import RunConfig
from tunelab.distributed import unwrap
from tunelab.model import count_parameters, load_model_for_training
from tunelab.train.context import RunContext
from tunelab.train.trainer import TunelabTrainer
from tunelab.train.world import global_batch

__all__ = [
    "PreferenceTrainer",
    "add_reference_columns",
    "card_info",
    "completion_logps",
    "is_peft",
    "load_policy",
    "pad_token_id",
    "reference_mode",
    "uses_adapter_reference",
]


def load_policy(config: RunConfig, ctx: RunContext) -> tuple[torch.nn.Module, int, int]:
    """(model ready to train, trainable parameters, total parameters) for ``config``."""
    model = load_model_for_training(config, ctx.compute_dtype)
    trainable, total = count_parameters(model)
    ctx.say(f"trainable parameters: {trainable:,} of {total:,} ({100 * trainable / total:.3f}%)")
    return model, trainable, total


def pad_token_id(tokenizer: Any) -> int:
    """The id batches are padded with (load_tokenizer guarantees a pad token)."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def is_peft(model: torch.nn.Module) -> bool:
    return hasattr(model, "disable_adapter") and hasattr(model, "peft_config")


def uses_adapter_reference(config: RunConfig) -> bool:
    """Whether the adapter-disabled model equals the model at the start (a fresh, zero-effect adapter)."""
    f = config.finetuning
    return f.finetuning_type == "lora" and not config.model.adapter_name_or_path and not f.pissa_init


@contextlib.contextmanager
def reference_mode(model: torch.nn.Module) -> Iterator[None]:
    """Run ``model`` as the reference inside the block: LoRA disabled, no gradients.

    ``model`` may be the DDP wrapper: the adapter is switched off in the module it wraps (asking
    the wrapper would find no adapter and compare the policy with itself).
    """
    inner = unwrap(model)
    with torch.no_grad(), inner.disable_adapter() if is_peft(inner) else contextlib.nullcontext():
        yield


def completion_logps(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    completion_mask: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(summed log-prob of each row's completion, its token count, per-token log-probs).

    Only the positions from the earliest completion token on get logits (``logits_to_keep``), so a
    long shared prompt costs no vocabulary projection. Log-softmax runs in fp32.
    """
    from trl.trainer.utils import selective_log_softmax

    start = int(completion_mask.int().argmax(dim=-1).min().clamp(min=1))
    width = input_ids.size(1) - start
    logits = model(
        input_ids=input_ids, attention_mask=attention_mask, use_cache=False, logits_to_keep=width + 1
    ).logits[:, :-1]
    labels, mask = input_ids[:, start:], completion_mask[:, start:].to(logits.dtype)
    per_token = selective_log_softmax(logits.float(), labels) * mask.float()
    return per_token.sum(-1), mask.float().sum(-1), per_token


def add_reference_columns(
    model: torch.nn.Module,
    dataset: Any,
    collator: Callable[[list[dict[str, Any]]], dict[str, torch.Tensor]],
    compute: Callable[[torch.nn.Module, dict[str, torch.Tensor]], dict[str, torch.Tensor]],
    *,
    batch_size: int,
    compute_dtype: torch.dtype,
) -> Any:
    """``dataset`` plus the columns ``compute(model, batch)`` returns, from the model as it is now."""
    device = next(model.parameters()).device
    columns: dict[str, list[float]] = defaultdict(list)
    was_training = model.training
    model.eval()
    autocast = torch.autocast(device.type, dtype=compute_dtype, enabled=compute_dtype != torch.float32)
    with torch.no_grad(), autocast:
        for start in range(0, len(dataset), batch_size):
            rows = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
            batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in collator(rows).items()}
            for name, values in compute(model, batch).items():
                columns[name] += values.float().cpu().tolist()
    model.train(was_training)
    for name, values in columns.items():
        dataset = dataset.add_column(name, values)
    return dataset


def card_info(config: RunConfig, trainable: int, total: int, **extra: Any) -> dict[str, Any]:
    """The model card's facts about a preference run."""
    t = config.training
    return {
        "base_model": config.model.model_name_or_path,
        "stage": config.finetuning.stage,
        "finetuning_type": config.finetuning.finetuning_type,
        "datasets": ",".join(config.data.dataset or []),
        "template": config.data.template or "(tokenizer's own)",
        "cutoff_len": config.data.cutoff_len,
        "learning_rate": t.learning_rate,
        "effective_batch": global_batch(t.per_device_train_batch_size, t.gradient_accumulation_steps),
        "trainable_params": f"{trainable:,} / {total:,}",
        **extra,
    }


class PreferenceTrainer(TunelabTrainer):
    """A TunelabTrainer whose evaluation runs the stage's loss and whose logs carry the stage's metrics.

    ``compute_loss`` of a subclass calls :meth:`record` with per-sample values; each log row gets
    their mean since the previous row (train and eval separately, eval keys prefixed ``eval_``).
    """

    # our losses are means over the micro-batch: the Trainer divides them by gradient_accumulation_steps
    loss_is_scaled_for_ga = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.label_names: list[str] = []  # no labels: evaluation must still call compute_loss
        self.can_return_loss = True
        self._sums: dict[str, dict[str, list[float]]] = {"train": {}, "eval": {}}

    def record(self, name: str, values: torch.Tensor, *, mode: str | None = None) -> None:
        """Add per-sample ``values`` to metric ``name`` (empty tensors count nothing).

        ``mode`` ('train'/'eval') defaults to the model's current mode.
        """
        mode = mode or ("train" if self.model.training else "eval")
        values = values.detach().float()
        total = self._sums[mode].setdefault(name, [0.0, 0.0])
        total[0] += float(values.sum())
        total[1] += values.numel()

    def metric_means(self, mode: str) -> dict[str, float]:
        """Mean of every recorded metric since the last log (empty metrics are left out)."""
        return {name: s / n for name, (s, n) in self._sums[mode].items() if n > 0}

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        mode = "train" if self.model.training else "eval"
        means = self.metric_means(mode)
        prefix = "eval_" if mode == "eval" else ""
        if "train_loss" not in logs:  # the end-of-training summary gets no leftover step metrics
            logs.update({f"{prefix}{name}": value for name, value in means.items()})
        self._sums[mode].clear()
        super().log(logs, start_time)
