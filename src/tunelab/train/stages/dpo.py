"""Stage ``dpo``: direct preference optimisation and its relatives on pairwise data.

``pref_loss`` picks the loss; every one compares the chosen and the rejected response of a pair:

- ``sigmoid`` (DPO, Rafailov et al. 2023): ``-log sigmoid(beta * margin)`` where the margin is the
  chosen-minus-rejected difference of policy-minus-reference log-probs; ``dpo_label_smoothing``
  gives robust/conservative DPO;
- ``hinge`` (SLiC): ``relu(1 - beta * margin)``;
- ``ipo`` (Azar et al. 2023): ``(margin / tokens - 1 / (2 beta))^2`` on per-token log-probs;
- ``orpo`` (Hong et al. 2024), no reference: chosen NLL ``+ beta * -log sigmoid(log odds ratio)``;
- ``simpo`` (Meng et al. 2024), no reference: ``-log sigmoid(beta * (avg chosen - avg rejected) - gamma)``.

``pref_ftx`` adds ``pref_ftx x`` the chosen responses' mean token NLL (orpo has it built in).
Logged: rewards/chosen, rewards/rejected, rewards/accuracies (share of pairs whose chosen reward
is higher), rewards/margins, logps/chosen, logps/rejected (+ eval_ versions), as TRL names them.
Rewards are beta x policy-minus-reference log-probs (orpo/simpo: beta x the policy's mean log-prob).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

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

__all__ = ["DPO_EVAL_METRICS", "DPOTrainer", "preference_losses", "run_dpo"]

DPO_EVAL_METRICS = STAGE_EVAL_METRICS["dpo"]
_REFERENCE_FREE = ("orpo", "simpo")


def preference_losses(
    pref: PreferenceArgs,
    chosen: torch.Tensor,
    rejected: torch.Tensor,
    ref_chosen: torch.Tensor | None,
    ref_rejected: torch.Tensor | None,
    n_chosen: torch.Tensor,
    n_rejected: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(per-pair loss, chosen rewards, rejected rewards) from summed log-probs and token counts."""
    beta, kind = pref.pref_beta, pref.pref_loss
    avg_chosen, avg_rejected = chosen / n_chosen.clamp(min=1), rejected / n_rejected.clamp(min=1)
    if kind in _REFERENCE_FREE:
        if kind == "orpo":
            # log odds(y) = log p - log(1 - p) with p the mean per-token probability
            log_odds = (avg_chosen - avg_rejected) - (
                torch.log1p(-torch.exp(avg_chosen).clamp(max=1 - 1e-6))
                - torch.log1p(-torch.exp(avg_rejected).clamp(max=1 - 1e-6))
            )
            losses = -avg_chosen - beta * F.logsigmoid(log_odds)
        else:
            losses = -F.logsigmoid(beta * (avg_chosen - avg_rejected) - pref.simpo_gamma)
        return losses, beta * avg_chosen.detach(), beta * avg_rejected.detach()
    assert ref_chosen is not None and ref_rejected is not None
    chosen_ratio, rejected_ratio = chosen - ref_chosen, rejected - ref_rejected
    margin = chosen_ratio - rejected_ratio
    if kind == "sigmoid":
        eps = pref.dpo_label_smoothing
        losses = -(1 - eps) * F.logsigmoid(beta * margin) - eps * F.logsigmoid(-beta * margin)
    elif kind == "hinge":
        losses = torch.relu(1 - beta * margin)
    else:  # ipo, on per-token log-ratios
        per_token = chosen_ratio / n_chosen.clamp(min=1) - rejected_ratio / n_rejected.clamp(min=1)
        losses = (per_token - 1 / (2 * beta)) ** 2
    return losses, beta * chosen_ratio.detach(), beta * rejected_ratio.detach()


class DPOTrainer(PreferenceTrainer):
    """Pairwise preference training; batches are [chosen rows; rejected rows] from TRL's collator."""

    def __init__(self, *args: Any, preference: PreferenceArgs, precomputed_reference: bool, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.preference = preference
        self.precomputed_reference = precomputed_reference

    def compute_loss(
        self, model: torch.nn.Module, inputs: dict[str, Any], return_outputs: bool = False, **_: Any
    ) -> Any:
        pref = self.preference
        ids, mask, completion = inputs["input_ids"], inputs["attention_mask"], inputs["completion_mask"]
        logps, n_tokens, _ = completion_logps(model, ids, mask, completion)
        chosen, rejected = logps.chunk(2)
        n_chosen, n_rejected = n_tokens.chunk(2)
        ref_chosen = ref_rejected = None
        if pref.pref_loss in _REFERENCE_FREE:
            pass
        elif self.precomputed_reference:
            ref_chosen, ref_rejected = inputs["ref_chosen_logps"], inputs["ref_rejected_logps"]
        else:
            with reference_mode(model):
                ref_chosen, ref_rejected = completion_logps(model, ids, mask, completion)[0].chunk(2)
        losses, chosen_rewards, rejected_rewards = preference_losses(
            pref, chosen, rejected, ref_chosen, ref_rejected, n_chosen, n_rejected
        )
        loss = losses.mean()
        if pref.pref_ftx > 0 and pref.pref_loss != "orpo":
            loss = loss + pref.pref_ftx * (-chosen / n_chosen.clamp(min=1)).mean()
        self.record("rewards/chosen", chosen_rewards)
        self.record("rewards/rejected", rejected_rewards)
        self.record("rewards/accuracies", (chosen_rewards > rejected_rewards).float())
        self.record("rewards/margins", chosen_rewards - rejected_rewards)
        self.record("logps/chosen", chosen)
        self.record("logps/rejected", rejected)
        return (loss, {}) if return_outputs else loss


def _reference_logps(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    chosen, rejected = completion_logps(
        model, batch["input_ids"], batch["attention_mask"], batch["completion_mask"]
    )[0].chunk(2)
    return {"ref_chosen_logps": chosen, "ref_rejected_logps": rejected}


def run_dpo(config: RunConfig, run: RunDir, ctx: RunContext, resume_from: Path | None) -> RunResult:
    """Load, build, train and save a dpo run; see the module docstring."""
    from trl.trainer.dpo_trainer import DataCollatorForPreference

    tokenizer = load_tokenizer(config.model)
    data = prepare_once(build_preference_datasets, config, tokenizer)  # bad data fails before the model loads
    ctx.say(data.stats.describe())
    model, trainable, total = load_policy(config, ctx)
    collator = DataCollatorForPreference(pad_token_id=pad_token_id(tokenizer))
    pref = config.preference
    precompute = pref.pref_loss not in _REFERENCE_FREE and not uses_adapter_reference(config)
    train_set, eval_set = data.train, data.eval
    if precompute:
        ctx.say("reference: log-probs of the untouched model, computed once before training")
        options = {
            "batch_size": config.training.per_device_eval_batch_size,
            "compute_dtype": ctx.compute_dtype,
        }
        train_set = add_reference_columns(model, train_set, collator, _reference_logps, **options)
        if eval_set is not None and len(eval_set):
            eval_set = add_reference_columns(model, eval_set, collator, _reference_logps, **options)
    has_eval = eval_set is not None and len(eval_set) > 0
    args = build_training_arguments(
        config,
        run.path,
        ctx.compute_dtype,
        eval_metrics=DPO_EVAL_METRICS,
        has_eval_set=has_eval if eval_set is not None else None,
    )
    callbacks, stop = build_callbacks(config, run)
    callbacks.extend(ctx.callbacks)  # e.g. tune's pruning callback
    trainer = DPOTrainer(
        model=model,
        args=args,
        train_dataset=train_set,
        eval_dataset=eval_set if has_eval else None,
        data_collator=collator,
        processing_class=tokenizer,
        callbacks=callbacks,
        training=config.training,
        finetuning=config.finetuning,
        run=run,
        preference=pref,
        precomputed_reference=precompute,
    )
    drop_default_printers(trainer)
    extra = ctx.run_metrics(trainable, total, data.stats)
    card = card_info(config, trainable, total, pref_loss=pref.pref_loss, pref_beta=pref.pref_beta)
    return run_trainer(
        trainer, run, stop, resume_from=resume_from, extra_metrics=extra, card_info=card, perplexity=False
    )
