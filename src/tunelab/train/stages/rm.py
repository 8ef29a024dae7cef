"""Stage ``rm``: a reward model from pairwise data, as a value head on the causal LM (LoRA, freeze or full).

The score of a conversation is the value head applied to the hidden state of its last token; the
pairwise (Bradley-Terry) loss ``-log sigmoid(score(chosen) - score(rejected))`` teaches the model
to score the preferred response higher. Logged per step and per evaluation: accuracy (share of
pairs whose chosen response scores higher), margin (mean score difference), rewards/chosen and
rewards/rejected (mean scores). The evaluation also runs once before training, so the log shows
where accuracy started. The run directory holds the model as an sft run would plus
``value_head.safetensors``; :func:`tunelab.model.reward.load_reward_model` scores text with it,
and ``reward_model: <run dir>`` uses it in stage ppo.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from tunelab.config import RunConfig
from tunelab.config.rules import STAGE_EVAL_METRICS
from tunelab.data.tokenize_pref import build_preference_datasets
from tunelab.distributed import prepare_once
from tunelab.model import count_parameters, load_tokenizer
from tunelab.model.value_head import (
    attach_value_head,
    last_token_scores,
    load_value_head,
    value_head_detached,
)
from tunelab.runs.rundir import RunDir
from tunelab.train.builders import build_callbacks, build_training_arguments, drop_default_printers
from tunelab.train.context import RunContext
from tunelab.train.preference import PreferenceTrainer, card_info, load_policy, pad_token_id
from tunelab.train.runner import RunResult, run_trainer
from tunelab.train.value_head import BestValueHeadCallback

__all__ = ["RM_EVAL_METRICS", "RewardModelTrainer", "run_rm"]

RM_EVAL_METRICS = STAGE_EVAL_METRICS["rm"]


class RewardModelTrainer(PreferenceTrainer):
    """Pairwise reward-model training; batches are [chosen rows; rejected rows] (prompt + response)."""

    def compute_loss(
        self, model: torch.nn.Module, inputs: dict[str, Any], return_outputs: bool = False, **_: Any
    ) -> Any:
        scores = last_token_scores(model, inputs["input_ids"], inputs["attention_mask"])
        chosen, rejected = scores.float().chunk(2)
        loss = -F.logsigmoid(chosen - rejected).mean()
        self.record("accuracy", (chosen > rejected).float())
        self.record("margin", chosen - rejected)
        self.record("rewards/chosen", chosen)
        self.record("rewards/rejected", rejected)
        return (loss, {}) if return_outputs else loss

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """The model exactly as an sft run saves it, plus value_head.safetensors beside it."""
        directory = output_dir or self.args.output_dir
        with value_head_detached(self.model) as head:
            super().save_model(directory, _internal_call=_internal_call)
        if head is not None and self.args.should_save:
            head.save(directory)


def run_rm(config: RunConfig, run: RunDir, ctx: RunContext, resume_from: Path | None) -> RunResult:
    """Load, build, train and save a reward model; see the module docstring."""
    from trl.trainer.dpo_trainer import DataCollatorForPreference

    tokenizer = load_tokenizer(config.model)
    data = prepare_once(build_preference_datasets, config, tokenizer)  # bad data fails before the model loads
    ctx.say(data.stats.describe())
    model, _, _ = load_policy(config, ctx)
    if resume_from is not None:  # the Trainer restores the model weights; the head is ours to restore
        load_value_head(model, resume_from)
    else:
        attach_value_head(model)
    trainable, total = count_parameters(model)
    has_eval = data.eval is not None and len(data.eval) > 0
    args = build_training_arguments(
        config,
        run.path,
        ctx.compute_dtype,
        eval_metrics=RM_EVAL_METRICS,
        has_eval_set=has_eval if data.eval is not None else None,
        eval_on_start=has_eval and config.training.eval_strategy != "no",
    )
    callbacks, stop = build_callbacks(config, run)
    callbacks.extend(ctx.callbacks)  # e.g. tune's pruning callback
    callbacks.append(BestValueHeadCallback(model))
    trainer = RewardModelTrainer(
        model=model,
        args=args,
        train_dataset=data.train,
        eval_dataset=data.eval if has_eval else None,
        data_collator=DataCollatorForPreference(pad_token_id=pad_token_id(tokenizer)),
        processing_class=tokenizer,
        callbacks=callbacks,
        training=config.training,
        finetuning=config.finetuning,
        run=run,
    )
    drop_default_printers(trainer)
    extra = ctx.run_metrics(trainable, total, data.stats)
    card = card_info(config, trainable, total, value_head="value_head.safetensors")
    return run_trainer(
        trainer, run, stop, resume_from=resume_from, extra_metrics=extra, card_info=card, perplexity=False
    )
