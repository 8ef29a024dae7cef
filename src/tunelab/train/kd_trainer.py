"""``KDTrainer``: the TunelabTrainer whose loss mixes distillation and cross-entropy on the response tokens.

loss = kd_alpha x KD(teacher || student) + (1 - kd_alpha) x CE(labels), both per response token with
the Trainer's own normalisation (summed, divided by the response tokens of the whole accumulated
batch), so kd_alpha = 0 trains exactly what stage sft trains. The teacher is a live frozen model or a
:class:`~tunelab.train.teacher_cache.TeacherCache`; the student's logits are never materialised for
the whole batch (see :func:`tunelab.train.kd_loss.chunked_kd_and_ce`).

With an ``on_policy`` sampler (kd_on_policy_ratio > 0), that share of steps trains on responses the
student samples itself, with the KD loss alone over the generated tokens (see
:mod:`tunelab.train.kd_on_policy`); their steps are left out of ce_loss, and on_policy_share is logged.

Logged per step: kd_loss, ce_loss, top1_agreement (share of response tokens where student and teacher
agree on the most likely token). Evaluation adds eval_kd_loss, eval_ce_loss, eval_perplexity (the
student's, from its cross-entropy), eval_teacher_perplexity and eval_top1_agreement. Under several
processes every figure is a ratio of sums over all ranks (through :mod:`tunelab.distributed`), each
evaluated sample counted once (:mod:`tunelab.train.kd_metrics`), so it equals the 1-process figure.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from tunelab import distributed
from tunelab.config.schema_kd import KDArgs
from tunelab.train.kd_loss import KDSums, TeacherChunk, chunked_kd_and_ce, head_logits, teacher_targets
from tunelab.train.kd_metrics import kd_eval_metrics, merge_sample_sums
from tunelab.train.kd_on_policy import OnPolicySampler
from tunelab.train.trainer import TunelabTrainer

__all__ = ["KDTrainer", "decoder_states"]

IGNORE_INDEX = -100


def decoder_states(model: Any, inputs: dict[str, Any]) -> torch.Tensor:
    """Last hidden states (B, T, H) of a causal LM, after its final norm, with logits for one position only.

    The call goes through the model's own forward (and so through PEFT and DDP wrappers, whose gradient
    synchronisation hooks on it); ``logits_to_keep=1`` skips the (B, T, vocabulary) logits.
    """
    kwargs = {k: inputs[k] for k in ("input_ids", "attention_mask", "position_ids") if k in inputs}
    output = model(**kwargs, use_cache=False, output_hidden_states=True, logits_to_keep=1)
    return output.hidden_states[-1]


class KDTrainer(TunelabTrainer):
    """See the module docstring. ``teacher`` (frozen causal LM) or ``cache`` gives the teacher's view."""

    def __init__(
        self,
        *args: Any,
        kd: KDArgs,
        n_shared_vocab: int,
        teacher: Any = None,
        cache: Any = None,
        on_policy: OnPolicySampler | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.kd, self.teacher, self.cache, self.n_shared_vocab = kd, teacher, cache, n_shared_vocab
        self.on_policy = on_policy
        self._on_policy_now = False  # the current training step is on-policy
        self._micro = (-1, 0)  # (step, micro-batches seen in it): seeds each micro-batch's sampling
        self._sums: dict[str, dict[str, float]] = {}
        # evaluation: sample key (its row in the eval split) -> kd_metrics.SAMPLE_FIELDS values
        self._eval_samples: dict[Any, tuple[float, ...]] = {}

    # ---- on-policy steps --------------------------------------------------------------------------

    def training_step(self, model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None) -> Any:
        step = self.state.global_step
        self._on_policy_now = self.on_policy is not None and self.on_policy.is_on(step)
        if self._on_policy_now:
            assert self.on_policy is not None
            micro = self._micro[1] if self._micro[0] == step else 0
            self._micro = (step, micro + 1)
            inputs = self.on_policy.rollout(
                self.accelerator.unwrap_model(model),  # generate needs no gradient sync (DDP)
                inputs,
                self.data_collator,
                step=step,
                micro=micro,
                rank=self.args.process_index,
            )
        return super().training_step(model, inputs, num_items_in_batch)

    # ---- the loss ---------------------------------------------------------------------------------

    def compute_loss(
        self,
        model: Any,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        rows = inputs.pop("kd_row", None)
        labels = inputs["labels"]
        targets = labels[:, 1:]
        mask = targets != IGNORE_INDEX
        hidden = decoder_states(model, inputs)[:, :-1][mask]
        teacher, teacher_label_lp = self._teacher_chunks(inputs, mask, rows)
        # the head DDP's forward also used
        head = self.accelerator.unwrap_model(model).get_output_embeddings()
        flat_targets = targets[mask]

        def kd_sums(start: int, end: int) -> KDSums:
            """The sums over the batch's response tokens start:end."""
            return chunked_kd_and_ce(
                hidden[start:end],
                head,
                flat_targets[start:end],
                lambda s, e: teacher(start + s, start + e),
                kind=self.kd.kd_loss,
                temperature=self.kd.kd_temperature,
                beta=self.kd.kd_jsd_beta,
                chunk_tokens=self.kd.kd_chunk_tokens,
            )

        if not model.training:
            sums = self._eval_sums(kd_sums, mask.sum(dim=1).tolist(), rows, teacher_label_lp)
        else:
            sums = kd_sums(0, hidden.shape[0])
            if self._on_policy_now:
                # the KD loss alone, a mean over this micro-batch's generated tokens and its share of the
                # accumulated step (num_items_in_batch counted the replaced reference responses)
                scale = self.current_gradient_accumulation_steps if num_items_in_batch is not None else 1
                loss = sums.kd / (max(sums.n_tokens, 1) * scale)
                # logged figures are summed over ranks; DDP averages this rank-local mean's gradients
                share = loss / self.accelerator.num_processes
                self._record("train", kd=share, agree=sums.agree, n=sums.n_tokens, batches=1, on_policy=1)
                return (loss, {"loss": loss}) if return_outputs else loss
        denominator = num_items_in_batch if num_items_in_batch is not None else max(sums.n_tokens, 1)
        alpha = self.kd.kd_alpha
        loss = alpha * sums.kd / denominator + (1 - alpha) * sums.ce / denominator
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * self.accelerator.num_processes  # as the Trainer does: DDP averages the gradients
        if model.training:  # as the logged loss: the step's value (normalised as above), averaged over steps
            self._record(
                "train",
                kd=sums.kd / denominator,
                ce=sums.ce / denominator,
                agree=sums.agree,
                n=sums.n_tokens,
                batches=1,
                ce_batches=1,
            )
        return (loss, {"loss": loss}) if return_outputs else loss

    def _eval_sums(
        self,
        kd_sums: Callable[[int, int], KDSums],
        n_per_sample: list[int],
        rows: torch.Tensor | None,
        teacher_label_lp: torch.Tensor,
    ) -> KDSums:
        """The batch's sums, computed sample by sample and recorded per sample (see tunelab.train.kd_metrics)."""
        keys = rows.tolist() if rows is not None else [None] * len(n_per_sample)
        parts, start = [], 0
        for key, n in zip(keys, n_per_sample):
            part = kd_sums(start, start + n)
            nll = -float(teacher_label_lp[start : start + n].sum())
            if key is None:  # (no sample index: counted as a sample of its own)
                key = ("unindexed", distributed.rank(), len(self._eval_samples))
            self._eval_samples[key] = (float(part.kd), float(part.ce), float(part.agree), n, nll)
            parts.append(part)
            start += n
        return KDSums(
            kd=torch.stack([p.kd for p in parts]).sum(),
            ce=torch.stack([p.ce for p in parts]).sum(),
            agree=torch.stack([p.agree for p in parts]).sum(),
            n_tokens=start,
        )

    def _teacher_chunks(
        self, inputs: dict[str, Any], mask: torch.Tensor, rows: torch.Tensor | None
    ) -> tuple[TeacherChunk, torch.Tensor]:
        """(chunk function for chunked_kd_and_ce, the teacher's log-prob of each label, filled as chunks are read)."""
        topk, vocab = self.kd.kd_topk, self.n_shared_vocab
        if self.cache is not None:
            split = "train" if self.model.training else "eval"
            log_probs, ids, label_log_probs = self.cache.batch(split, rows.tolist(), topk=topk)  # type: ignore[union-attr]
            device = mask.device
            log_probs, ids = log_probs.to(device), ids.to(device)
            return (lambda s, e: (log_probs[s:e], ids[s:e])), label_log_probs
        with torch.no_grad():
            hidden = decoder_states(self.teacher, inputs)[:, :-1][mask]
        head = self.teacher.get_output_embeddings()
        labels = inputs["labels"][:, 1:][mask]
        label_lp = torch.zeros(labels.shape[0], dtype=torch.float32)

        @torch.no_grad()
        def chunk(start: int, end: int) -> tuple[torch.Tensor, torch.Tensor | None]:
            logits = head_logits(head, hidden[start:end])[:, :vocab]
            full = torch.log_softmax(logits, dim=-1)
            label_lp[start:end] = full.gather(-1, labels[start:end, None])[:, 0].cpu()
            return teacher_targets(logits, topk)

        return chunk, label_lp

    # ---- metrics ----------------------------------------------------------------------------------

    def _record(self, mode: str, **values: Any) -> None:
        sums = self._sums.setdefault(mode, {})
        for name, value in values.items():
            sums[name] = sums.get(name, 0.0) + float(value.detach() if torch.is_tensor(value) else value)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs and "train_loss" not in logs:  # a logging step: every rank is here
            sums = self._sums.pop("train", {})
            # each rank's KD and CE are its share of the step (normalised by the global token count) and
            # agreement is counted in tokens: the run's figures are the sums over ranks
            kd, ce, agree, n = distributed.all_reduce_sum(
                [sums.get(k, 0.0) for k in ("kd", "ce", "agree", "n")]
            )
            if n:
                gas = self.args.gradient_accumulation_steps
                logs["kd_loss"] = kd / max(sums.get("batches", 0.0) / gas, 1.0)
                if sums.get("ce_batches"):  # off-policy steps only: on-policy ones have no reference labels
                    logs["ce_loss"] = ce / max(sums["ce_batches"] / gas, 1.0)
                logs["top1_agreement"] = agree / n
                if self.on_policy is not None:
                    logs["on_policy_share"] = sums.get("on_policy", 0.0) / max(sums.get("batches", 0.0), 1.0)
        super().log(logs, start_time)

    def evaluation_loop(self, *args: Any, **kwargs: Any) -> Any:
        self._eval_samples = {}
        output = super().evaluation_loop(*args, **kwargs)
        prefix = kwargs.get("metric_key_prefix", args[4] if len(args) > 4 else "eval")
        samples, self._eval_samples = self._eval_samples, {}
        totals = merge_sample_sums(distributed.all_gather_objects(samples))
        output.metrics.update({f"{prefix}_{k}": v for k, v in kd_eval_metrics(totals).items()})
        return output
