"""A run's model, optimizer and data set up exactly as `tunelab train` would, for a few measured steps.

`estimate` times real steps with it, `find-batch` probes batch sizes until memory runs out and
`lr-find` ramps the learning rate; all three must see the same model, precision, adapters,
optimizer and collator as training, or their answers would be about a different run. The loop
mirrors what the transformers Trainer does per step (autocast forward, backward, gradient
clipping, optimizer step, ``zero_grad(set_to_none=True)``) without its bookkeeping, which the
throughput benchmark measured as negligible (docs/benchmarks.md).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from tunelab.compat.transformers import attn_implementation
from tunelab.config import RunConfig
from tunelab.errors import DataError
from tunelab.tune.memtrack import TensorMemoryTracker

if TYPE_CHECKING:
    from tunelab.data.pipeline import PreparedData

__all__ = ["MemoryReading", "TrainingProbe", "build_probe", "tensor_bytes"]


@dataclass(frozen=True)
class MemoryReading:
    """Peak tensor memory of a measured block: what existed before it plus its own peak, in bytes."""

    static_bytes: int  # weights and buffers (and anything else alive) before the block
    peak_bytes: int  # above static_bytes, at the worst moment of the block

    @property
    def total_bytes(self) -> int:
        return self.static_bytes + self.peak_bytes


def tensor_bytes(tensors: Iterator[torch.Tensor] | list[torch.Tensor]) -> int:
    """Bytes of the distinct storages behind ``tensors`` (tied or viewed tensors counted once)."""
    seen: dict[int, int] = {}
    for tensor in tensors:
        storage = tensor.untyped_storage()
        seen[storage.data_ptr() or id(storage)] = storage.nbytes()
    return sum(seen.values())


class TrainingProbe:
    """Model + optimizer + tokenized data of ``config``; see the module docstring.

    The probe owns its model: it is loaded from ``config`` for the probe and changed by its steps,
    never saved. ``rows``/``eval_rows`` are the tokenized (cut, packed) rows training would see.
    """

    def __init__(
        self,
        config: RunConfig,
        *,
        with_optimizer: bool = True,
        prepared: PreparedData | None = None,
        tokenizer: Any = None,
    ) -> None:
        from transformers import set_seed

        from tunelab.data.collator import build_collator
        from tunelab.data.packing import packing_mode
        from tunelab.data.pipeline import prepare_data
        from tunelab.model import load_model_for_training, load_tokenizer
        from tunelab.model.precision import resolve_compute_dtype
        from tunelab.train.optim import build_optimizer

        self.config = config
        # the new weights (a LoRA adapter's A, a classifier's head) are drawn from the training seed, as
        # the Trainer draws them: a range test run twice on one config measures the same model
        set_seed(config.training.seed)
        self.compute_dtype = resolve_compute_dtype(config.compute_type)
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(config.model)
        if config.finetuning.stage == "cls":
            model = self._load_classification()
        else:
            model = load_model_for_training(config, self.compute_dtype)
            if prepared is None:
                prepared = prepare_data(config, self.tokenizer)
            self.stats = prepared.stats
            self.rows = prepared.train
            self.eval_rows = prepared.eval
            flatten = config.data.packing and packing_mode(attn_implementation(model.config)) == "flatten"
            self.collator = build_collator(self.tokenizer, packing=config.data.packing, flatten=flatten)
        if config.model.quantization_bit is None:
            model.to(self.device)
        self.model = model
        self.trainable = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = (
            build_optimizer(model, config.training, config.finetuning) if with_optimizer else None
        )

    def _load_classification(self) -> Any:
        """Stage cls: the classifier (its new head trainable), its tokenized splits and padding
        collator, as `run_cls` builds them. The probe's steps use the model's own cross-entropy, i.e.
        without ``class_weights`` (it changes the loss's scale per class, not where it descends)."""
        from transformers import DataCollatorWithPadding

        from tunelab.data.classification import build_classification_data, load_classification_records
        from tunelab.model import load_classifier_for_training

        config = self.config
        splits, label_map = load_classification_records(config.data, seed=config.training.seed)
        data = build_classification_data(splits, label_map, self.tokenizer, cutoff_len=config.data.cutoff_len)
        model = load_classifier_for_training(
            config, label_map.id2label, self.tokenizer.pad_token_id, self.compute_dtype
        )
        self.stats, self.rows, self.eval_rows = data.stats, data.train, data.eval
        self.collator = DataCollatorWithPadding(self.tokenizer)
        return model

    # ---- batches ----------------------------------------------------------------------------

    def longest_row_length(self, split: str = "train") -> int:
        """Tokens in the longest row of ``split`` (after cutoff and packing): the worst case a batch meets."""
        rows = self.rows if split == "train" else self.eval_rows
        if rows is None or len(rows) == 0:
            return 0
        return max(len(ids) for ids in rows["input_ids"])

    def worst_case_batch(
        self, n_rows: int, *, split: str = "train", seq_len: int | None = None
    ) -> dict[str, Any]:
        """``n_rows`` copies of the longest row (or of a row of ``seq_len`` tokens built by repeating it).

        When the data's rows differ in length, real batches are padded, and a padded batch takes the
        costlier attention path (a 4-D mask, keys/values repeated per head): so the last copy is made one
        token shorter, which pads the batch the way real ones are padded.
        """
        rows = self.rows if split == "train" or self.eval_rows is None else self.eval_rows
        if rows is None or len(rows) == 0:
            raise DataError(f"the {split} split has no rows to probe with", "check dataset / val_size")
        lengths = [len(ids) for ids in rows["input_ids"]]
        row = dict(rows[max(range(len(lengths)), key=lengths.__getitem__)])
        if seq_len is not None and seq_len != len(row["input_ids"]):
            row = {key: _fit(list(value), seq_len) for key, value in row.items()}
            if "position_ids" in row:  # one long sample, not several packed ones
                row["position_ids"] = list(range(seq_len))
        batch = [row] * n_rows
        if n_rows > 1 and not self.config.data.packing and len(set(lengths)) > 1:
            batch[-1] = {key: list(value)[:-1] for key, value in row.items()}
        return self._to_device(self.collator(batch))

    def sample_batches(self, n_rows: int, count: int, *, seed: int = 0) -> list[dict[str, Any]]:
        """``count`` batches of ``n_rows`` rows drawn at random from the training rows (what an epoch sees)."""
        generator = torch.Generator().manual_seed(seed)
        total = len(self.rows)
        batches = []
        for _ in range(count):
            picks = torch.randint(0, total, (n_rows,), generator=generator).tolist()
            batches.append(self._to_device(self.collator([self.rows[i] for i in picks])))
        return batches

    def _to_device(self, batch: dict[str, Any]) -> dict[str, Any]:
        return {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}

    # ---- steps ------------------------------------------------------------------------------

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """Mixed precision as the Trainer applies it (bf16/fp16 autocast; nothing in fp32)."""
        if self.compute_dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.compute_dtype)

    def forward_backward(self, batch: dict[str, Any], *, scale: float = 1.0) -> float:
        """Loss of ``batch`` (forward in training mode), its gradients accumulated into ``.grad``."""
        self.model.train()
        with self.autocast():
            loss = self.model(**batch).loss  # the output (with its logits) is dropped here, as in Trainer
        (loss * scale if scale != 1.0 else loss).backward()
        return float(loss.detach())

    def optimizer_step(self) -> float | None:
        """Clip gradients (max_grad_norm), step, clear gradients; returns the gradient norm before clipping."""
        if self.optimizer is None:
            raise RuntimeError("this probe was built without an optimizer")
        norm = None
        if self.config.training.max_grad_norm > 0:
            norm = float(torch.nn.utils.clip_grad_norm_(self.trainable, self.config.training.max_grad_norm))
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return norm

    def train_step(self, batch: dict[str, Any]) -> float:
        """One optimizer step on one micro-batch; returns the loss."""
        loss = self.forward_backward(batch)
        self.optimizer_step()
        return loss

    @torch.no_grad()
    def eval_step(self, batch: dict[str, Any]) -> float:
        """Loss of ``batch`` without gradients (what evaluation does)."""
        self.model.eval()
        with self.autocast():
            loss = self.model(**batch).loss
        return float(loss)

    # ---- measurements -------------------------------------------------------------------------

    def static_bytes(self) -> int:
        """Bytes of the weights, buffers and optimizer state alive now."""
        tensors = [*self.model.parameters(), *self.model.buffers()]
        if self.optimizer is not None:
            for state in self.optimizer.state.values():
                tensors.extend(v for v in state.values() if isinstance(v, torch.Tensor))
        return tensor_bytes(tensors)

    @contextlib.contextmanager
    def measure(self, limit_bytes: int | None = None) -> Iterator[TensorMemoryTracker]:
        """Track tensor memory inside the block; ``limit_bytes`` caps live bytes above the start."""
        tracker = TensorMemoryTracker(limit_bytes=limit_bytes)
        with tracker:
            yield tracker

    def measure_train_peak(self, batch: dict[str, Any], *, limit_bytes: int | None = None) -> MemoryReading:
        """Peak tensor memory of a steady-state training step on ``batch``.

        A first step creates the optimizer state (as after step one of a run); the second is the one
        measured. ``limit_bytes`` caps the growth above the weights (raises ProbeOutOfMemory).
        """
        static = self.static_bytes()
        with self.measure(limit_bytes) as tracker:
            self.train_step(batch)
            tracker.reset_peak()
            self.train_step(batch)
        return MemoryReading(static_bytes=static, peak_bytes=tracker.peak)

    def measure_eval_peak(self, batch: dict[str, Any], *, limit_bytes: int | None = None) -> MemoryReading:
        """Peak tensor memory of an evaluation forward pass on ``batch`` (no gradients)."""
        static = self.static_bytes()
        with self.measure(limit_bytes) as tracker:
            self.eval_step(batch)
        return MemoryReading(static_bytes=static, peak_bytes=tracker.peak)

    def time_steps(self, micro_batch: int, steps: int, *, seed: int = 0) -> tuple[float, float, float]:
        """(seconds per micro-batch forward+backward, seconds per optimizer step, non-padding tokens/s),
        medians over ``steps`` real micro-batches drawn from the training rows, after two warm-up steps."""
        batches = self.sample_batches(micro_batch, steps + 2, seed=seed)
        for batch in batches[:2]:  # warm-up: lazy initialisation, optimizer state, kernel choice
            self.train_step(batch)
        fb_times, step_times, speeds = [], [], []
        for batch in batches[2:]:
            seconds = self.timed(self.forward_backward, batch)
            fb_times.append(seconds)
            step_times.append(self.timed(self.optimizer_step))
            tokens = (
                int(batch["attention_mask"].sum())
                if "attention_mask" in batch
                else batch["input_ids"].numel()
            )
            speeds.append(tokens / seconds if seconds > 0 else 0.0)
        return _median(fb_times), _median(step_times), _median(speeds)

    def timed(self, fn: Any, *args: Any) -> float:
        """Seconds ``fn(*args)`` takes, with the device synchronised before and after."""
        self._sync()
        start = time.perf_counter()
        fn(*args)
        self._sync()
        return time.perf_counter() - start

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def release(self) -> None:
        """Drop gradients and free cached device memory (after an out-of-memory probe)."""
        import gc

        if self.optimizer is not None:
            self.optimizer.zero_grad(set_to_none=True)
        else:
            self.model.zero_grad(set_to_none=True)
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2] if ordered else 0.0


def _fit(values: list[Any], length: int) -> list[Any]:
    """``values`` repeated or cut to exactly ``length`` items."""
    if not values:
        return values
    repeats = -(-length // len(values))
    return (values * repeats)[:length]


def build_probe(config: RunConfig, *, with_optimizer: bool = True) -> TrainingProbe:
    """Load the model, optimizer and data of ``config`` for measured steps (see TrainingProbe)."""
    return TrainingProbe(config, with_optimizer=with_optimizer)
