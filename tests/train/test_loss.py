"""Chunked cross-entropy from hidden states: the same loss and gradients as transformers', less work."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM
from transformers.loss.loss_utils import ForCausalLMLoss

from tunelab.data.collator import build_collator
from tunelab.errors import ConfigError, ResourceError
from tunelab.train.loss import chunked_cross_entropy, install_training_loss, resolve_loss_kernel

M = -100


def _case(seed: int = 0, vocab: int = 97, with_bias: bool = False):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(3, 11, 16, generator=g, dtype=torch.float32, requires_grad=True)
    weight = (0.3 * torch.randn(vocab, 16, generator=g, dtype=torch.float32)).requires_grad_()
    bias = torch.randn(vocab, generator=g, dtype=torch.float32, requires_grad=True) if with_bias else None
    labels = torch.randint(0, vocab, (3, 11), generator=g)
    labels[0, :4] = M  # a prompt
    labels[1, 7:] = M  # padding
    labels[2] = M  # a row with nothing to learn
    return hidden, weight, bias, labels


def _grads(loss: torch.Tensor, *tensors: torch.Tensor | None) -> list[torch.Tensor]:
    present = [t for t in tensors if t is not None]
    return list(torch.autograd.grad(loss, present))


@pytest.mark.parametrize("num_items", [None, 23])
@pytest.mark.parametrize("with_bias", [False, True])
def test_chunked_loss_and_gradients_equal_the_standard_loss(num_items: int | None, with_bias: bool) -> None:
    hidden, weight, bias, labels = _case(with_bias=with_bias)
    logits = hidden @ weight.T + (bias if bias is not None else 0)
    standard = ForCausalLMLoss(logits, labels, weight.shape[0], num_items_in_batch=num_items)
    chunked = chunked_cross_entropy(hidden, weight, labels, bias=bias, num_items_in_batch=num_items)
    torch.testing.assert_close(chunked, standard, rtol=1e-6, atol=1e-6)
    for ours, theirs in zip(_grads(chunked, hidden, weight, bias), _grads(standard, hidden, weight, bias)):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-7)


def test_chunks_smaller_than_the_batch_give_the_same_result(monkeypatch: pytest.MonkeyPatch) -> None:
    hidden, weight, _, labels = _case(seed=1)
    whole = chunked_cross_entropy(hidden, weight, labels)
    monkeypatch.setattr("tunelab.train.loss._CHUNK_ELEMENTS", 1)  # 16 rows a chunk: several chunks
    torch.testing.assert_close(chunked_cross_entropy(hidden, weight, labels), whole, rtol=1e-6, atol=1e-7)


def test_no_label_at_all_gives_zero_not_nan() -> None:
    hidden, weight, _, labels = _case()
    loss = chunked_cross_entropy(hidden, weight, torch.full_like(labels, M))
    assert loss.item() == 0.0


def test_cuda_kernels_refuse_clearly_without_a_gpu() -> None:
    assert resolve_loss_kernel("auto", cuda_available=False) == "chunked"
    for kernel in ("liger", "cce"):
        with pytest.raises(ResourceError) as err:
            resolve_loss_kernel(kernel, cuda_available=False)
        assert "CUDA" in str(err.value) and "chunked" in err.value.hint
    with pytest.raises(ConfigError):
        resolve_loss_kernel("fast", cuda_available=False)


def _lora_model(tiny_model_dir: Path) -> torch.nn.Module:
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    model.config.use_cache = False
    lora = LoraConfig(task_type="CAUSAL_LM", r=4, lora_alpha=8, lora_dropout=0.0, target_modules="all-linear")
    model = get_peft_model(model, lora)
    for name, p in model.named_parameters():  # LoRA B starts at zero: make it matter
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.02)
    return model


def _batch(tokenizer, packing: bool = False) -> dict:
    rows = [
        {"input_ids": [5, 6, 7, 8, 9, 10, 11], "labels": [M, M, M, 8, 9, 10, 11]},
        {"input_ids": [20, 21, 22, 23], "labels": [M, 21, 22, 23]},
    ]
    return build_collator(tokenizer, packing=packing)(rows)


def test_installed_loss_matches_the_models_own_in_training(tiny_model_dir: Path, tiny_tokenizer) -> None:
    model = _lora_model(tiny_model_dir).train()
    batch = _batch(tiny_tokenizer)
    own = model(**batch).loss
    own_grads = _grads(own, *[p for p in model.parameters() if p.requires_grad])
    assert "chunked" in install_training_loss(model, "auto")
    out = model(**batch)
    assert out.logits is None  # no logits tensor was built
    for ours, theirs in zip(_grads(out.loss, *[p for p in model.parameters() if p.requires_grad]), own_grads):
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(out.loss, own, rtol=1e-5, atol=1e-6)
    model.eval()  # evaluation and generation still get logits
    with torch.no_grad():
        assert model(**batch).logits is not None
    assert "standard" in install_training_loss(_lora_model(tiny_model_dir), "standard")


def test_packed_row_gives_each_sample_its_loss_alone(tiny_model_dir: Path, tiny_tokenizer) -> None:
    """Packed samples stay apart: the summed loss of a packed row is the sum of each sample run alone
    (tolerance 1e-5 relative, fp32), with the chunked loss and sdpa's block-diagonal mask."""
    model = _lora_model(tiny_model_dir).train()
    install_training_loss(model, "chunked")
    samples = [
        {"input_ids": [5, 6, 7, 8, 9, 10, 11], "labels": [M, M, M, 8, 9, 10, 11]},
        {"input_ids": [20, 21, 22, 23], "labels": [M, 21, 22, 23]},
        {"input_ids": [30, 31, 32, 33, 34], "labels": [M, M, 32, 33, 34]},
    ]
    collate = build_collator(tiny_tokenizer, packing=True)
    packed = {
        "input_ids": [i for s in samples for i in s["input_ids"]],
        "labels": [label for s in samples for label in s["labels"]],
        "position_ids": [p for s in samples for p in range(len(s["input_ids"]))],
    }
    one = collate([packed])
    total = model(**one, num_items_in_batch=1).loss  # summed, not averaged
    alone = sum(model(**collate([s]), num_items_in_batch=1).loss for s in samples)
    torch.testing.assert_close(total, alone, rtol=1e-5, atol=1e-5)
    # without the position restarts the samples would see each other, and the loss would differ
    mixed = collate([{**packed, "position_ids": list(range(len(packed["input_ids"])))}])
    mixed["labels"] = one["labels"]
    assert abs(model(**mixed, num_items_in_batch=1).loss.item() - alone.item()) > 1e-3
