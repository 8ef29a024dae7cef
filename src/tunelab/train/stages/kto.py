"""Stage ``kto``: Kahneman-Tversky optimisation on responses tagged desirable or undesirable (Ethayarajh et al. 2024).

Unlike dpo, KTO needs no pairs: each record is one prompt with one response and a ``kto_tag``, and
desirable and undesirable responses may answer different prompts. With ``r = log pi(y|x) -
log pi_ref(y|x)`` and ``z`` an estimate of KL(pi || pi_ref) taken on mismatched prompt/response
pairs (each prompt with the previous record's response; clamped at 0, no gradient):

- desirable: ``kto_chosen_weight x (1 - sigmoid(beta (r - z)))``
- undesirable: ``kto_rejected_weight x (1 - sigmoid(beta (z - r)))``

Raise the weight of the rarer kind so that weight x count is roughly equal (the paper suggests a
ratio within [1, 4/3]). ``pref_ftx`` adds the desirable responses' mean token NLL. Logged:
rewards/chosen, rewards/rejected (beta x r, means over desirable / undesirable responses),
rewards/margins (their difference), kl (z), logps/chosen, logps/rejected (+ eval_ versions).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tunelab.config import RunConfig
from tunelab.config.rules import STAGE_EVAL_METRICS
from tunelab.config.schema_pref import PreferenceArgs
from tunelab.data.tokenize_pref import build_preference_datasets
from tunelab.distributed import prepare_once
from tunelab.model import load_tokenizer
from tunelab.runs.rundir import RunDir
from tunelab.train.builders import build_callbacks, build_training_arguments, drop_default_printers
from tunelab.train.context import RunContext
from tunelab.train.preference import (
    PreferenceTrainer,
    add_reference_columns,
    card_info,
    completion_logps,
    load_policy,
    pad_token_id,
    reference_mode,
    uses_adapter_reference,
)
from tunelab.train.runner import RunResult, run_trainer

__all__ = ["KTO_EVAL_METRICS", "KTOTrainer", "add_kl_completions", "run_kto"]

KTO_EVAL_METRICS = STAGE_EVAL_METRICS["kto"]


def add_kl_completions(dataset: Any) -> Any:
    """Pair each prompt with the previous record's response (the first with the last): the KL sample."""
    completions = dataset["completion_ids"]
    return dataset.add_column("KL_completion_ids", completions[-1:] + completions[:-1])


def _logps(
    model: torch.nn.Module, batch: dict[str, torch.Tensor], prefix: str = ""
) -> tuple[torch.Tensor, torch.Tensor]:
    logps, n_tokens, _ = completion_logps(
        model,
        batch[f"{prefix}input_ids"],
        batch[f"{prefix}attention_mask"],
        batch[f"{prefix}completion_mask"],
    )
    return logps, n_tokens


class KTOTrainer(PreferenceTrainer):
    """Unpaired preference training on batches from TRL's DataCollatorForUnpairedPreference."""

    def __init__(self, *args: Any, preference: PreferenceArgs, precomputed_reference: bool, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.preference = preference
        self.precomputed_reference = precomputed_reference

    def compute_loss(
        self, model: torch.nn.Module, inputs: dict[str, Any], return_outputs: bool = False, **_: Any
    ) -> Any:
        pref, beta = self.preference, self.preference.pref_beta
        logps, n_tokens = _logps(model, inputs)
        with torch.no_grad():
            kl_logps, _ = _logps(model, inputs, "KL_")
        if self.precomputed_reference:
            ref_logps, ref_kl_logps = inputs["ref_logps"], inputs["ref_KL_logps"]
        else:
            with reference_mode(model):
                ref_logps, ref_kl_logps = _logps(model, inputs)[0], _logps(model, inputs, "KL_")[0]
        kl = (kl_logps - ref_kl_logps).mean().clamp(min=0).detach()
        desirable = inputs["label"].bool()
        ratio = logps - ref_logps
        losses = torch.where(
            desirable,
            pref.kto_chosen_weight * (1 - torch.sigmoid(beta * (ratio - kl))),
            pref.kto_rejected_weight * (1 - torch.sigmoid(beta * (kl - ratio))),
        )
        loss = losses.mean()
        if pref.pref_ftx > 0 and desirable.any():
            nll = -(logps / n_tokens.clamp(min=1))[desirable]
            loss = loss + pref.pref_ftx * nll.sum() / len(desirable)
        rewards = beta * ratio.detach()
        self.record("rewards/chosen", rewards[desirable])
        self.record("rewards/rejected", rewards[~desirable])
        self.record("logps/chosen", logps[desirable])
        self.record("logps/rejected", logps[~desirable])
        self.record("kl", kl.reshape(1))
        return (loss, {}) if return_outputs else loss

    def metric_means(self, mode: str) -> dict[str, float]:
        means = super().metric_means(mode)
        if "rewards/chosen" in means and "rewards/rejected" in means:
            means["rewards/margins"] = means["rewards/chosen"] - means["rewards/rejected"]
        return means


def _reference_logps(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {"ref_logps": _logps(model, batch)[0], "ref_KL_logps": _logps(model, batch, "KL_")[0]}


def run_kto(config: RunConfig, run: RunDir, ctx: RunContext, resume_from: Path | None) -> RunResult:
    """Load, build, train and save a kto run; see the module docstring."""
    from trl.trainer.kto_trainer import DataCollatorForUnpairedPreference

    tokenizer = load_tokenizer(config.model)
    data = prepare_once(build_preference_datasets, config, tokenizer)  # bad data fails before the model loads
    ctx.say(data.stats.describe())
    model, trainable, total = load_policy(config, ctx)
    n_desirable = sum(data.train["label"])
    ctx.say(f"kto: {n_desirable} desirable / {len(data.train) - n_desirable} undesirable training responses")
    collator = DataCollatorForUnpairedPreference(pad_token_id=pad_token_id(tokenizer))
    train_set = add_kl_completions(data.train)
    has_eval = data.eval is not None and len(data.eval) > 0
    eval_set = add_kl_completions(data.eval) if has_eval else None
    precompute = not uses_adapter_reference(config)
    if precompute:
        ctx.say("reference: log-probs of the untouched model, computed once before training")
        options = {
            "batch_size": config.training.per_device_eval_batch_size,
            "compute_dtype": ctx.compute_dtype,
        }
        train_set = add_reference_columns(model, train_set, collator, _reference_logps, **options)
        if eval_set is not None:
            eval_set = add_reference_columns(model, eval_set, collator, _reference_logps, **options)
    args = build_training_arguments(
        config,
        run.path,
        ctx.compute_dtype,
        eval_metrics=KTO_EVAL_METRICS,
        has_eval_set=has_eval if data.eval is not None else None,
    )
    callbacks, stop = build_callbacks(config, run)
    callbacks.extend(ctx.callbacks)  # e.g. tune's pruning callback
    trainer = KTOTrainer(
        model=model,
        args=args,
        train_dataset=train_set,
        eval_dataset=eval_set,
        data_collator=collator,
        processing_class=tokenizer,
        callbacks=callbacks,
        training=config.training,
        finetuning=config.finetuning,
        run=run,
        preference=config.preference,
        precomputed_reference=precompute,
    )
    drop_default_printers(trainer)
    extra = ctx.run_metrics(
        trainable,
        total,
        data.stats,
        data_n_desirable=n_desirable,
    )
    card = card_info(config, trainable, total, pref_beta=config.preference.pref_beta)
    return run_trainer(
        trainer, run, stop, resume_from=resume_from, extra_metrics=extra, card_info=card, perplexity=False
    )
