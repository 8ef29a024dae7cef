"""Stage ``ppo``: reinforcement learning from a reward model trained by ``stage: rm``.

TRL 1.16 has no PPOTrainer any more, so this is a compact PPO loop on the transformers Trainer
(checkpoints, resume, callbacks, logging and our optimizer/schedule come with it) and TRL's
``selective_log_softmax``; the arithmetic lives in :mod:`tunelab.train.ppo_core`. One Trainer step is
one PPO round, as in LLaMA-Factory:

1. rollout: ``per_device_train_batch_size x gradient_accumulation_steps x ppo_buffer_size`` prompts;
   the policy samples a response to each (``max_new_tokens``, ``temperature``, ``top_p``, ``top_k``;
   sampling is always on, for exact on-policy log-probs use top_p: 1.0 and top_k: 0);
2. the reward model (``reward_model``: an rm run directory) scores each reply with its own template;
3. per-token rewards = -kl_coef x (log pi - log pi_ref) + the score at the last token; advantages by
   GAE on the value head's estimates (a linear value head reading the policy's last hidden state);
4. ``ppo_epochs`` passes over the rollout in mini-batches of ``per_device_train_batch_size x
   gradient_accumulation_steps`` prompts, one optimizer step each (the learning-rate schedule steps
   once per round); the KL coefficient adapts towards ``ppo_target``.

The reference policy is the adapter-disabled model with LoRA, else a frozen copy of the start model.
Logged per round: reward (mean raw score), reward_std, kl (per response, to the reference), kl_coef,
policy_loss, value_loss, entropy, clip_fraction, approx_kl, response_length; evaluation (when
eval_strategy is set) samples replies to the eval prompts and reports eval_reward and eval_kl.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tunelab.compat.transformers import prepare_inputs
from tunelab.config import GenerationArgs, RunConfig
from tunelab.config.rules import STAGE_EVAL_METRICS
from tunelab.config.schema_pref import PreferenceArgs
from tunelab.data.tokenize_pref import build_preference_datasets
from tunelab.distributed import all_reduce_mean, prepare_once, unwrap, world_size
from tunelab.model import count_parameters, load_tokenizer
from tunelab.model.value_head import attach_value_head, load_value_head, value_head_detached
from tunelab.runs.rundir import RunDir
from tunelab.train.builders import build_callbacks, build_training_arguments, drop_default_printers
from tunelab.train.context import RunContext
from tunelab.train.ppo_core import (
    KLController,
    RunningMoments,
    gae_advantages,
    masked_mean,
    masked_whiten,
    ppo_losses,
)
from tunelab.train.preference import (
    PreferenceTrainer,
    card_info,
    is_peft,
    load_policy,
    pad_token_id,
    reference_mode,
)
from tunelab.train.runner import RunResult, run_trainer
from tunelab.train.value_head import BestValueHeadCallback

__all__ = ["PPO_EVAL_METRICS", "PPOTrainer", "PromptCollator", "run_ppo"]

PPO_EVAL_METRICS = STAGE_EVAL_METRICS["ppo"]
PPO_STATE = "ppo_state.json"  # adaptive KL coefficient and score statistics, beside each checkpoint


@dataclass(frozen=True)
class PromptCollator:
    """Left-padded prompt ids (generation continues from the right) plus the conversations."""

    pad_token_id: int

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        width = max(len(row["input_ids"]) for row in rows)
        ids = [[self.pad_token_id] * (width - len(r["input_ids"])) + list(r["input_ids"]) for r in rows]
        mask = [[0] * (width - len(r["input_ids"])) + [1] * len(r["input_ids"]) for r in rows]
        return {
            "input_ids": torch.tensor(ids, dtype=torch.long),
            "attention_mask": torch.tensor(mask, dtype=torch.long),
            "messages": [json.loads(r["messages"]) for r in rows],
            "system": [r["system"] for r in rows],
        }


@dataclass
class Rollout:
    """One round's generated responses and everything PPO computes from them before updating."""

    sequences: torch.Tensor  # [B, Q + R] prompt (left-padded) + response (right-padded)
    attention_mask: torch.Tensor
    response_mask: torch.Tensor  # [B, R] 1 on response tokens up to and including the stop token
    logprobs: torch.Tensor  # [B, R] of the policy that generated them
    values: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor


class PPOTrainer(PreferenceTrainer):
    """One training step = one PPO round (see the module docstring)."""

    def __init__(
        self,
        *args: Any,
        preference: PreferenceArgs,
        generation: GenerationArgs,
        reward_model: Any,
        ref_model: torch.nn.Module | None,
        stop_ids: list[int],
        micro_batch: int,
        mini_batch: int,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.preference, self.generation = preference, generation
        self.reward_model, self.ref_model, self.stop_ids = reward_model, ref_model, stop_ids
        self.micro_batch, self.mini_batch = micro_batch, mini_batch
        self.kl_control = KLController(preference.ppo_kl_coef, preference.ppo_target)
        self.score_moments = RunningMoments()

    # ---- one round ------------------------------------------------------------------------------

    def training_step(
        self, model: torch.nn.Module, inputs: dict[str, Any], num_items_in_batch: Any = None
    ) -> torch.Tensor:
        rollout = self._rollout(model, prepare_inputs(self, inputs), mode="train")
        model.train()
        n, losses = rollout.sequences.size(0), []
        steps = [
            order[start : start + self.mini_batch]
            for _ in range(self.preference.ppo_epochs)
            for order in [torch.randperm(n, device=rollout.sequences.device)]
            for start in range(0, n, self.mini_batch)
        ]
        for k, indices in enumerate(steps):
            losses.append(self._minibatch_backward(model, rollout, indices))
            if k < len(steps) - 1:  # the Trainer clips, steps and schedules after the last one
                if self.args.max_grad_norm > 0:
                    self.accelerator.clip_grad_norm_(model.parameters(), self.args.max_grad_norm)
                self.optimizer.step()
                self.optimizer.zero_grad()
        return torch.stack(losses).mean()

    def _minibatch_backward(
        self, model: torch.nn.Module, rollout: Rollout, indices: torch.Tensor
    ) -> torch.Tensor:
        """Forward/backward of one mini-batch in micro-batches; returns its (detached) total loss."""
        total = torch.zeros((), device=rollout.sequences.device)
        for chunk in indices.split(self.micro_batch):
            mask = rollout.response_mask[chunk]
            with self.compute_loss_context_manager():
                logits, values = self._policy_forward(
                    model, rollout.sequences[chunk], rollout.attention_mask[chunk], mask.size(1)
                )
                logprobs = _token_logprobs(logits, rollout.sequences[chunk, -mask.size(1) :])
                out = ppo_losses(
                    logprobs,
                    rollout.logprobs[chunk],
                    rollout.advantages[chunk],
                    values,
                    rollout.values[chunk],
                    rollout.returns[chunk],
                    mask,
                )
                loss = out.total * len(chunk) / len(indices)
            self.accelerator.backward(loss)
            total += loss.detach()
            with torch.no_grad():
                entropy = masked_mean(_entropy(logits), mask, dim=1)
            for name, value in (
                ("policy_loss", out.policy),
                ("value_loss", out.value),
                ("clip_fraction", out.clip_fraction),
                ("approx_kl", out.approx_kl),
            ):
                self.record(name, value.detach().reshape(1), mode="train")
            self.record("entropy", entropy, mode="train")
        return total

    @torch.no_grad()
    def _rollout(self, model: torch.nn.Module, inputs: dict[str, Any], *, mode: str) -> Rollout:
        """Generate, score and evaluate one batch of prompts (no gradients)."""
        model.eval()
        queries, query_mask = inputs["input_ids"], inputs["attention_mask"]
        g = self.generation
        with self.compute_loss_context_manager():
            # (under DDP ``model`` is the wrapper, which has no generate: sampling needs no gradient sync)
            output = unwrap(model).generate(
                input_ids=queries,
                attention_mask=query_mask,
                max_new_tokens=g.max_new_tokens,
                do_sample=True,
                temperature=g.temperature,
                top_p=g.top_p,
                top_k=g.top_k,
                repetition_penalty=g.repetition_penalty,
                eos_token_id=self.stop_ids,
                pad_token_id=self.processing_class.pad_token_id,
                use_cache=True,
            )
        responses = output[:, queries.size(1) :]
        response_mask = _until_stop(responses, self.stop_ids)
        sequences = torch.cat(
            [queries, responses * response_mask + (1 - response_mask) * self.processing_class.pad_token_id], 1
        )
        attention = torch.cat([query_mask, response_mask], 1)
        width = responses.size(1)
        logprobs, values, ref_logprobs = [], [], []
        for chunk in torch.arange(len(sequences), device=sequences.device).split(self.micro_batch):
            with self.compute_loss_context_manager():
                logits, chunk_values = self._policy_forward(model, sequences[chunk], attention[chunk], width)
                logprobs.append(_token_logprobs(logits, responses[chunk]))
                values.append(chunk_values.float())
                ref_logits = self._reference_logits(model, sequences[chunk], attention[chunk], width)
                ref_logprobs.append(_token_logprobs(ref_logits, responses[chunk]))
        logprobs, values, ref_logprobs = torch.cat(logprobs), torch.cat(values), torch.cat(ref_logprobs)
        scores = self._scores(inputs, responses, response_mask)
        mask = response_mask.float()
        kl = (logprobs - ref_logprobs) * mask
        raw_scores = scores.clone()
        if self.preference.ppo_score_norm:
            self.score_moments.update(scores)
            scores = self.score_moments.normalize(scores)
        rewards = -self.kl_control.coef * kl
        last = (response_mask.sum(-1) - 1).clamp(min=0)
        rewards[torch.arange(len(rewards), device=rewards.device), last] += scores.to(rewards.dtype)
        if self.preference.ppo_whiten_rewards:
            rewards = masked_whiten(rewards, mask, shift_mean=False)
        advantages, returns = gae_advantages(rewards, values, mask)
        advantages = masked_whiten(advantages, mask)
        kl_per_response = kl.sum(-1)
        self.record("reward", raw_scores, mode=mode)
        self.record("kl", kl_per_response, mode=mode)
        self.record("response_length", mask.sum(-1), mode=mode)
        if mode == "train":
            self.record("reward_std", raw_scores.std(unbiased=False).reshape(1), mode=mode)
            self.record("kl_coef", torch.tensor([self.kl_control.coef]), mode=mode)
            # the mean over all ranks: every rank adapts the coefficient alike, so the ranks stay one run
            kl_mean = all_reduce_mean(float(kl_per_response.mean()))
            self.kl_control.update(kl_mean, len(kl_per_response) * world_size())
        return Rollout(sequences, attention, response_mask, logprobs, values, advantages, returns)

    # ---- model calls ----------------------------------------------------------------------------

    def _policy_forward(
        self, model: torch.nn.Module, sequences: torch.Tensor, attention: torch.Tensor, width: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits predicting the last ``width`` tokens, value estimate before each of them)."""
        out = model(
            input_ids=sequences,
            attention_mask=attention,
            position_ids=(attention.cumsum(-1) - 1).clamp(min=0),
            output_hidden_states=True,
            use_cache=False,
            logits_to_keep=width + 1,
        )
        # the value head reads the policy's features without training them: a value loss flowing
        # into the shared LoRA rewrote the policy (KL grew, reward did not) in our tiny-model runs
        hidden = out.hidden_states[-1][:, -width - 1 : -1].detach()
        # log-probs of the distribution the responses were sampled from: logits / temperature
        v_head = unwrap(model).v_head  # (a DDP wrapper hides the attribute)
        return out.logits[:, :-1] / self.generation.temperature, v_head(hidden)

    def _reference_logits(
        self, model: torch.nn.Module, sequences: torch.Tensor, attention: torch.Tensor, width: int
    ) -> torch.Tensor:
        reference = self.ref_model if self.ref_model is not None else unwrap(model)
        with reference_mode(reference):
            return (
                reference(
                    input_ids=sequences,
                    attention_mask=attention,
                    position_ids=(attention.cumsum(-1) - 1).clamp(min=0),
                    use_cache=False,
                    logits_to_keep=width + 1,
                ).logits[:, :-1]
                / self.generation.temperature
            )

    def _scores(
        self, inputs: dict[str, Any], responses: torch.Tensor, response_mask: torch.Tensor
    ) -> torch.Tensor:
        """The reward model's score of every reply (decoded up to the stop token)."""
        tokenizer = self.processing_class
        replies = [
            tokenizer.decode(
                [t for t, m in zip(row, mask) if m and t not in self.stop_ids], skip_special_tokens=True
            ).strip()
            for row, mask in zip(responses.tolist(), response_mask.tolist())
        ]
        scores = self.reward_model.score_replies(inputs["messages"], replies, systems=inputs["system"])
        return torch.tensor(scores, device=responses.device, dtype=torch.float32)

    # ---- evaluation and saving ------------------------------------------------------------------

    def evaluate(
        self, eval_dataset: Any = None, ignore_keys: Any = None, metric_key_prefix: str = "eval"
    ) -> dict[str, float]:
        """Sample replies to the eval prompts: mean reward and KL to the reference (no update)."""
        loader = self.get_eval_dataloader(eval_dataset)
        for batch in loader:
            self._rollout(self.model, prepare_inputs(self, batch), mode="eval")
        metrics = {f"{metric_key_prefix}_{k}": v for k, v in self.metric_means("eval").items()}
        self._sums["eval"].clear()
        self.log(dict(metrics))
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """The policy exactly as an sft run saves it, plus value_head.safetensors and ppo_state.json
        (the adapted KL coefficient and the score statistics), so a resumed run goes on where it was."""
        directory = output_dir or self.args.output_dir
        with value_head_detached(self.model) as head:
            super().save_model(directory, _internal_call=_internal_call)
        if self.args.should_save:
            if head is not None:
                head.save(directory)
            state = {
                "kl_control": self.kl_control.state_dict(),
                "score_moments": self.score_moments.state_dict(),
            }
            Path(directory, PPO_STATE).write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")

    def load_ppo_state(self, checkpoint: Path) -> None:
        """Restore what save_model wrote (checkpoints from before this file existed keep the defaults)."""
        path = checkpoint / PPO_STATE
        if path.is_file():
            state = json.loads(path.read_text(encoding="utf-8"))
            self.kl_control.load_state_dict(state["kl_control"])
            self.score_moments.load_state_dict(state["score_moments"])


def _token_logprobs(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    from trl.trainer.utils import selective_log_softmax

    return selective_log_softmax(logits.float(), tokens)


def _entropy(logits: torch.Tensor) -> torch.Tensor:
    logps = torch.log_softmax(logits.float(), dim=-1)
    return -(logps.exp() * logps).sum(-1)


def _until_stop(responses: torch.Tensor, stop_ids: list[int]) -> torch.Tensor:
    """1 on every response token up to and including the first stop token, 0 after it."""
    is_stop = torch.isin(responses, torch.tensor(stop_ids, device=responses.device))
    after_stop = (is_stop.cumsum(-1) - is_stop.long()) > 0
    return (~after_stop).long()


def run_ppo(config: RunConfig, run: RunDir, ctx: RunContext, resume_from: Path | None) -> RunResult:
    """Load the policy and the reward model, build the PPO loop, train and save; see the module docstring."""
    from trl.trainer.utils import disable_dropout_in_model

    from tunelab.model.reward import load_reward_model

    pref, t = config.preference, config.training
    assert pref.reward_model is not None  # RunConfig refuses ppo without one
    tokenizer = load_tokenizer(config.model)
    data = prepare_once(build_preference_datasets, config, tokenizer)  # bad data fails before the models load
    ctx.say(data.stats.describe())
    reward_model = load_reward_model(pref.reward_model, compute_dtype=ctx.compute_dtype)
    ctx.say(f"reward model: {pref.reward_model}")
    model, _, _ = load_policy(config, ctx)
    disable_dropout_in_model(model)  # rollout and update must see the same policy
    ref_model = None if is_peft(model) else copy.deepcopy(model).eval().requires_grad_(False)
    if resume_from is not None:
        load_value_head(model, resume_from)
    else:
        attach_value_head(model)
    trainable, total = count_parameters(model)
    template = data.template
    mini_batch = t.per_device_train_batch_size * t.gradient_accumulation_steps
    rollout_size = mini_batch * pref.ppo_buffer_size
    ctx.say(
        f"ppo: {rollout_size} prompts per round, {pref.ppo_epochs} epochs x {pref.ppo_buffer_size} "
        f"mini-batches of {mini_batch} (sampling on, max_new_tokens={config.generation.max_new_tokens})"
    )
    has_eval = data.eval is not None and len(data.eval) > 0
    args = build_training_arguments(
        config,
        run.path,
        ctx.compute_dtype,
        eval_metrics=PPO_EVAL_METRICS,
        has_eval_set=has_eval if data.eval is not None else None,
        per_device_train_batch_size=rollout_size,
        gradient_accumulation_steps=1,
        eval_on_start=has_eval and config.training.eval_strategy != "no",  # where the reward started
    )
    callbacks, stop = build_callbacks(config, run)
    callbacks.extend(ctx.callbacks)  # e.g. tune's pruning callback
    callbacks.append(BestValueHeadCallback(model))
    trainer = PPOTrainer(
        model=model,
        args=args,
        train_dataset=data.train,
        eval_dataset=data.eval if has_eval else None,
        data_collator=PromptCollator(pad_token_id(tokenizer)),
        processing_class=tokenizer,
        callbacks=callbacks,
        training=t,
        finetuning=config.finetuning,
        run=run,
        preference=pref,
        generation=config.generation,
        reward_model=reward_model,
        ref_model=ref_model,
        stop_ids=template.stop_token_ids(tokenizer),
        micro_batch=t.per_device_train_batch_size,
        mini_batch=mini_batch,
    )
    drop_default_printers(trainer)
    if resume_from is not None:
        trainer.load_ppo_state(resume_from)
    extra = ctx.run_metrics(trainable, total, data.stats)
    card = card_info(config, trainable, total, reward_model=pref.reward_model, ppo_epochs=pref.ppo_epochs)
    return run_trainer(
        trainer, run, stop, resume_from=resume_from, extra_metrics=extra, card_info=card, perplexity=False
    )
