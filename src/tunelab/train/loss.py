"""Causal-LM training loss without the full logits tensor: chunked cross-entropy from hidden states.

The standard path projects every position onto the vocabulary and runs log-softmax over a
B x T x V fp32 tensor (SmolLM2: 1024 tokens x 49,152 = 200 MB, plus as much again for its gradient),
although only the positions with a label (the responses; never prompt or padding tokens) count.
Profiled on a 2-core EPYC (docs/benchmarks.md), the logits matmul and softmax/CE took a quarter of a
SmolLM2 LoRA step. Here the hidden states of the label positions alone are projected, a chunk of rows
at a time; each chunk's gradient (softmax minus one-hot, times the projection) is formed right away in
the forward pass, so no logits survive it, the backward pass is a multiplication, and the softmax
backward kernel, the one-hot fill and the logits' memory are gone.

``loss_kernel`` picks the implementation: ``chunked`` (this module, any device), ``liger`` (Liger
Kernel's fused linear cross-entropy, CUDA) or ``cce`` (Apple's cut-cross-entropy, CUDA); ``auto`` is
liger on CUDA when installed, else chunked; ``standard`` keeps transformers' own loss. Only models whose
causal-LM head is a plain projection (no logit soft-capping or scaling) get the fused loss;
others keep the standard loss, and say so in the run log.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import torch

from tunelab.errors import ConfigError, ResourceError

__all__ = ["LOSS_KERNELS", "chunked_cross_entropy", "install_training_loss", "resolve_loss_kernel"]

LOSS_KERNELS = ("auto", "chunked", "liger", "cce", "standard")
IGNORE_INDEX = -100
# chunk rows so that one chunk of fp32 logits is about 32 MiB
_CHUNK_ELEMENTS = 1 << 23
# model types whose CausalLM forward is decoder -> lm_head -> ForCausalLMLoss with nothing in between
_PLAIN_HEADS = frozenset(
    "llama mistral qwen2 qwen3 phi3 gemma olmo olmo2 starcoder2 smollm3 internlm2 deepseek_v3 glm".split()
)
_PACKAGES = {"liger": ("liger_kernel", "liger-kernel"), "cce": ("cut_cross_entropy", "cut-cross-entropy")}


class _ChunkedLinearCrossEntropy(torch.autograd.Function):
    """Summed cross-entropy of ``hidden @ weight.T (+ bias)`` against ``targets``, chunk by chunk."""

    @staticmethod
    def forward(
        ctx: Any,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        targets: torch.Tensor,
        chunk: int,
    ) -> torch.Tensor:  # noqa: E501
        need_hidden = hidden.requires_grad
        need_weight = weight.requires_grad
        need_bias = bias is not None and bias.requires_grad
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        grad_hidden = torch.empty_like(hidden) if need_hidden else None
        grad_weight = torch.zeros_like(weight, dtype=torch.float32) if need_weight else None
        grad_bias = torch.zeros_like(bias, dtype=torch.float32) if need_bias else None
        matmul_dtype = hidden.dtype
        w = weight.to(matmul_dtype)
        for start in range(0, hidden.shape[0], chunk):
            h = hidden[start : start + chunk]
            t = targets[start : start + chunk]
            logits = (h @ w.T).float()
            if bias is not None:
                logits += bias.float()
            lse = torch.logsumexp(logits, dim=-1)
            rows = torch.arange(h.shape[0], device=h.device)
            total += (lse - logits[rows, t]).sum()
            if not (need_hidden or need_weight or need_bias):
                continue
            # d(sum CE)/d(logits) = softmax - onehot, built in place over the logits
            probs = logits.sub_(lse[:, None]).exp_()
            probs[rows, t] -= 1.0
            if need_hidden:
                grad_hidden[start : start + chunk] = (probs.to(matmul_dtype) @ w).to(hidden.dtype)
            if need_weight:
                grad_weight += probs.T @ h.float()
            if need_bias:
                grad_bias += probs.sum(0)
        ctx.save_for_backward(
            *(g if g is not None else torch.empty(0) for g in (grad_hidden, grad_weight, grad_bias))
        )
        ctx.needs = (need_hidden, need_weight, need_bias)
        ctx.dtypes = (weight.dtype, None if bias is None else bias.dtype)
        return total

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[Any, ...]:
        grad_hidden, grad_weight, grad_bias = ctx.saved_tensors
        need_hidden, need_weight, need_bias = ctx.needs
        scale = grad_output.float()
        return (
            grad_hidden * scale.to(grad_hidden.dtype) if need_hidden else None,
            (grad_weight * scale).to(ctx.dtypes[0]) if need_weight else None,
            (grad_bias * scale).to(ctx.dtypes[1]) if need_bias else None,
            None,
            None,
        )


def _label_positions(
    hidden: torch.Tensor, labels: torch.Tensor | None, shift_labels: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(hidden states, targets) of the positions that predict a label (causal shift applied)."""
    if shift_labels is None:
        shift_labels = torch.nn.functional.pad(labels, (0, 1), value=IGNORE_INDEX)[..., 1:]
    flat = shift_labels.reshape(-1).to(hidden.device)
    keep = flat != IGNORE_INDEX
    return hidden.reshape(-1, hidden.shape[-1])[keep], flat[keep]


def chunked_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    bias: torch.Tensor | None = None,
    num_items_in_batch: torch.Tensor | int | None = None,
    shift_labels: torch.Tensor | None = None,
    kernel: str = "chunked",
) -> torch.Tensor:
    """Causal-LM loss of ``hidden`` (B x T x H) under the head ``weight`` (V x H), as transformers'
    ``ForCausalLMLoss`` defines it: labels shifted by one, -100 ignored, mean over the labelled tokens
    or, with ``num_items_in_batch`` (gradient accumulation), their sum divided by it."""
    h, targets = _label_positions(hidden, labels, shift_labels)
    if kernel == "liger":
        from liger_kernel.transformers import LigerFusedLinearCrossEntropyLoss

        total = LigerFusedLinearCrossEntropyLoss(reduction="sum")(weight, h, targets, bias)
    elif kernel == "cce":
        from cut_cross_entropy import linear_cross_entropy

        total = linear_cross_entropy(h, weight, targets, bias=bias, reduction="sum")
    else:
        chunk = max(16, _CHUNK_ELEMENTS // weight.shape[0])
        total = _ChunkedLinearCrossEntropy.apply(h, weight, bias, targets, chunk)
    if num_items_in_batch is None:
        return total / max(1, targets.numel())  # mean (an empty batch gives 0, not nan)
    if torch.is_tensor(num_items_in_batch):
        num_items_in_batch = num_items_in_batch.to(total.device)
    return total / num_items_in_batch


def resolve_loss_kernel(loss_kernel: str, *, cuda_available: bool) -> str:
    """The loss implementation for ``loss_kernel`` on this machine; a clear error where it cannot run."""
    if loss_kernel not in LOSS_KERNELS:
        raise ConfigError(
            f"loss_kernel={loss_kernel!r} is not known", f"use one of: {', '.join(LOSS_KERNELS)}"
        )
    if loss_kernel == "auto":
        return "liger" if cuda_available and importlib.util.find_spec("liger_kernel") else "chunked"
    if loss_kernel in _PACKAGES:
        module, package = _PACKAGES[loss_kernel]
        if not cuda_available:
            raise ResourceError(
                f"loss_kernel={loss_kernel} runs Triton kernels that need a CUDA GPU, which this machine lacks",
                "set loss_kernel: chunked (the same saving in plain PyTorch, any device) or auto",
            )
        if importlib.util.find_spec(module) is None:
            raise ResourceError(
                f"loss_kernel={loss_kernel} needs the {package} package, which is not installed",
                f"pip install {package}, or set loss_kernel: chunked",
            )
    return loss_kernel


def _causal_lm(model: torch.nn.Module) -> torch.nn.Module | None:
    """The transformers *ForCausalLM module inside ``model`` (PEFT wrappers unwrapped), if any."""
    for module in model.modules():
        if hasattr(module, "get_decoder") and hasattr(module, "lm_head") and hasattr(module, "loss_function"):
            return module
    return None


def install_training_loss(model: torch.nn.Module, loss_kernel: str) -> str:
    """Make ``model``'s training forward (train mode, labels given) use the fused loss; say what was done.

    The causal LM's own ``forward`` is wrapped on the instance, so every caller (the Trainer, DDP,
    PEFT) still goes through ``model(**batch)``; evaluation, generation and calls without labels run
    the original forward and get logits as before. The wrapped forward returns ``logits=None``.
    """
    kernel = resolve_loss_kernel(loss_kernel, cuda_available=torch.cuda.is_available())
    if kernel == "standard":
        return "loss: transformers' standard cross-entropy (loss_kernel=standard)"
    lm = _causal_lm(model)
    model_type = getattr(getattr(lm, "config", None), "model_type", None)
    if lm is None or model_type not in _PLAIN_HEADS:
        return (
            f"loss: standard cross-entropy (model type {model_type!r} has no plain head for the fused loss)"
        )
    head = lm.lm_head
    if type(head) is not torch.nn.Linear:  # a LoRA-wrapped or trainable-copy head: keep its own forward
        return f"loss: standard cross-entropy (lm_head is a {type(head).__name__}, not a plain Linear)"
    original = lm.forward
    decoder = lm.get_decoder()

    def forward(*args: Any, labels: torch.Tensor | None = None, **kwargs: Any) -> Any:
        if labels is None or args or not lm.training or not torch.is_grad_enabled():
            return original(*args, labels=labels, **kwargs)
        from transformers.modeling_outputs import CausalLMOutputWithPast

        num_items = kwargs.pop("num_items_in_batch", None)
        shift_labels = kwargs.pop("shift_labels", None)
        kwargs.pop("logits_to_keep", None)
        outputs = decoder(**kwargs)
        loss = chunked_cross_entropy(
            outputs.last_hidden_state,
            head.weight,
            labels,
            bias=head.bias,
            num_items_in_batch=num_items,
            shift_labels=shift_labels,
            kernel=kernel,
        )
        return CausalLMOutputWithPast(loss=loss, logits=None, hidden_states=outputs.hidden_states)

    lm.forward = forward
    return (
        f"loss: {kernel} cross-entropy from hidden states, label positions only (loss_kernel={loss_kernel})"
    )
