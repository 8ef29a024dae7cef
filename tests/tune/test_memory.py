"""Memory formulas: hand-computed numbers, and the estimate against a measured step on a tiny model."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from tunelab.tune.memory import (
    TrainSetup,
    activation_bytes,
    count_trainable,
    estimate_eval_memory,
    estimate_memory,
)
from tunelab.tune.presets import find_preset
from tunelab.tune.shape import ModelShape

# The tiny llama's shape: hidden 64, 2 layers, 4 heads of 16 (2 kv heads), MLP 128, vocabulary 2000.
TINY = ModelShape("tiny", 64, 2, 4, 2, 16, 128, 2000)


def test_tiny_full_fp32_by_hand() -> None:
    setup = TrainSetup(method="full", compute_bytes=4, micro_batch=2, seq_len=10, device="cpu", masked=False)
    mem = estimate_memory(TINY, setup)
    assert mem.total_params == mem.trainable_params == 330_048
    assert mem.weights == mem.gradients == 4 * 330_048
    assert mem.optimizer_states == 8 * 330_048  # AdamW: two fp32 moments
    # per layer and token: norms 24h + rsqrt 8, attention (q, k, v, out in fp32 + log-sum-exp) 784, MLP 16I
    per_layer = 24 * 64 + 8 + (4 * 64 * 2 + 4 * 32 * 2 + 4 * 4) + 16 * 128
    assert per_layer == 4376  # what saved_tensors_hooks listed for this model
    assert mem.activations == 20 * (2 * per_layer + 12 * 64 + 32)
    assert mem.loss_peak == 12 * 2000 * 20
    assert mem.step_temporaries == 2 * 4 * 2000 * 64  # CPU AdamW: two temporaries of the embedding's size
    # this small batch peaks at the optimizer step: weights + states + gradients + scratch
    assert mem.peak_phase == "optimizer step"
    assert mem.peak == mem.weights + mem.optimizer_states + mem.gradients + mem.step_temporaries


def test_lora_on_llama2_7b_by_hand() -> None:
    shape = find_preset("llama2-7b").shape
    setup = TrainSetup(method="lora", compute_bytes=2, lora_rank=8)
    # per layer: q,k,v,o 8 x (4096 + 4096) each; gate, up, down 8 x (4096 + 11008) each; 32 layers
    trainable = 32 * (4 * 8 * 8192 + 3 * 8 * 15104)
    assert trainable == 19_988_480  # PEFT prints the same for r=8 on all linear layers
    assert count_trainable(shape, setup) == trainable
    mem = estimate_memory(shape, setup)
    assert mem.weights == 2 * 6_738_415_616 + 4 * trainable  # bf16 base, fp32 adapters
    assert mem.optimizer_states == 8 * trainable and mem.gradients == 4 * trainable


def test_quantization_and_optimizers_by_hand() -> None:
    shape = find_preset("llama2-7b").shape
    linear = 32 * (4 * 4096 * 4096 + 3 * 4096 * 11008)
    qlora = estimate_memory(shape, TrainSetup(method="lora", compute_bytes=2, quantization_bit=4))
    lora_params = 19_988_480
    nf4 = 0.5 + 1 / 64 + 4 / (64 * 256)  # 4 bits + double-quantized block scales
    assert qlora.weights == int(nf4 * linear) + 2 * (6_738_415_616 - linear) + 4 * lora_params
    int8 = estimate_memory(shape, TrainSetup(method="lora", compute_bytes=2, quantization_bit=8))
    assert int8.weights == linear + 2 * (6_738_415_616 - linear) + 4 * lora_params
    sgd = estimate_memory(TINY, TrainSetup(method="full", optimizer="sgd"))
    assert sgd.optimizer_states == 4 * 330_048
    assert (
        estimate_memory(TINY, TrainSetup(method="full", optimizer="sgd", sgd_momentum=0)).optimizer_states
        == 0
    )
    eight_bit = estimate_memory(TINY, TrainSetup(method="full", optimizer="adamw_8bit"))
    assert eight_bit.optimizer_states == int(2.03 * 330_048)
    # Adafactor keeps a row and a column vector per matrix: LoRA A (8 x 64) -> (8 + 64) x 4 bytes
    ada = estimate_memory(TINY, TrainSetup(method="lora", optimizer="adafactor", lora_targets=("q_proj",)))
    assert ada.optimizer_states == 2 * ((8 + 64) * 4 + (64 + 8) * 4)


def test_checkpointing_keeps_one_hidden_state_per_layer() -> None:
    setup = TrainSetup(method="full", micro_batch=1, seq_len=100, masked=False)
    plain, _ = activation_bytes(TINY, setup)
    saved, recompute = activation_bytes(TINY, replace(setup, gradient_checkpointing=True))
    assert saved == 100 * (2 * 4 * 64 + 12 * 64 + 32)  # each layer's fp32 input, then the head
    assert recompute == 100 * 4376  # one layer recomputed during the backward pass
    assert saved < plain


def test_accumulation_keeps_gradients_during_the_backward() -> None:
    shape = find_preset("qwen2.5-0.5b").shape
    setup = TrainSetup(method="full", compute_bytes=2, micro_batch=4, seq_len=512)
    one, many = estimate_memory(shape, setup), estimate_memory(shape, replace(setup, grad_accum=4))
    assert many.peak >= one.peak


def _measure(model_dir: Path, *items: str, batch: int = 8, seq_len: int = 128) -> tuple[float, float]:
    from tunelab.config import load_config
    from tunelab.tune.estimate import setup_from_config
    from tunelab.tune.probe import TrainingProbe
    from tunelab.tune.shape import read_model_shape

    config = load_config(
        None,
        [f"model_name_or_path={model_dir}", "dataset=instruct_en", "dataset_dir=builtin", "template=chatml",
         "compute_type=fp32", f"per_device_train_batch_size={batch}", *items],
    )  # fmt: skip
    probe = TrainingProbe(config)
    measured = probe.measure_train_peak(probe.worst_case_batch(batch, seq_len=seq_len)).total_bytes
    setup = setup_from_config(config, compute_bytes=4, device=probe.device.type, seq_len=seq_len)
    estimated = estimate_memory(read_model_shape(str(model_dir)), setup).peak
    eval_measured = probe.measure_eval_peak(probe.worst_case_batch(batch, seq_len=seq_len)).total_bytes
    eval_estimated = estimate_eval_memory(read_model_shape(str(model_dir)), setup, batch)
    return estimated / measured, eval_estimated / eval_measured


@pytest.mark.parametrize(
    "items",
    [("finetuning_type=full",), ("finetuning_type=lora", "lora_dropout=0.05"), ("finetuning_type=freeze",)],
    ids=["full", "lora", "freeze"],
)
def test_estimate_within_15_percent_of_measured_peak(tiny_model_dir: Path, items: tuple[str, ...]) -> None:
    train_ratio, eval_ratio = _measure(tiny_model_dir, *items)
    assert abs(train_ratio - 1) < 0.15, train_ratio
    assert abs(eval_ratio - 1) < 0.15, eval_ratio
