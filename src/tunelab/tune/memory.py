"""Training memory from a model's shape and a run's settings: pure arithmetic, no torch, any model size.

Peak tensor memory of one training step (what CUDA's ``max_memory_allocated`` reports) is

    weights + optimizer states + max(activations + loss peak [+ gradients while accumulating],
                                     gradients + optimizer-step temporaries)

because gradients are freed (``zero_grad(set_to_none=True)``) between optimizer steps, while the
activations of a micro-batch and its loss are gone by the time the optimizer steps.

The activation terms are what autograd *saves* per token in each decoder layer, counted tensor by
tensor from the transformers Llama/Qwen2 code path that tunelab trains (RMSNorm in fp32, sdpa
attention saving q/k/v/output and a log-sum-exp, gated MLP), for each precision and method:
full-precision and autocast (bf16/fp16 compute with fp32 trainable weights) differ in which tensors
are cast copies; LoRA saves a cast copy of each adapted layer's input (and a dropout mask when
``lora_dropout > 0``) but nothing for the frozen base weights. Those counts were checked tensor by
tensor with ``torch.autograd.graph.saved_tensors_hooks`` and are verified against measured peaks
by ``benchmarks/estimate_accuracy.py`` (docs/benchmarks.md) and ``tests/tune/test_memory.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tunelab.tune.shape import LinearSpec, ModelShape

__all__ = [
    "MemoryBreakdown",
    "activation_bytes",
    "autocast_copy_bytes",
    "loss_peak_bytes",
    "TrainSetup",
    "count_trainable",
    "estimate_eval_memory",
    "estimate_memory",
    "optimizer_state_bytes",
]

_INT64_PER_TOKEN = 32  # input_ids, labels, attention mask / position ids, shifted labels (8 bytes each)
_OPTIMIZERS_ADAM = {"adamw_torch", "adamw_torch_fused", "adam", "paged_adamw_32bit"}
_OPTIMIZERS_8BIT = {"adamw_8bit", "paged_adamw_8bit"}


@dataclass(frozen=True)
class TrainSetup:
    """The settings of a run that decide its memory (one device, one micro-batch)."""

    method: str = "lora"  # lora | freeze | full
    compute_bytes: int = 4  # 2 for bf16/fp16 autocast, 4 for fp32
    micro_batch: int = 1
    seq_len: int = 1024
    grad_accum: int = 1
    gradient_checkpointing: bool = False
    optimizer: str = "adamw_torch"
    sgd_momentum: float = 0.9
    lora_rank: int = 8
    lora_targets: tuple[str, ...] = ("all",)
    lora_dropout: float = 0.05
    use_dora: bool = False
    additional_target: tuple[str, ...] = ()
    freeze_trainable_layers: int = 2
    freeze_extra_modules: tuple[str, ...] = ()
    quantization_bit: int | None = None
    double_quantization: bool = True
    attention: str = "sdpa"  # sdpa | eager | fa2
    device: str = "cuda"  # cuda | cpu (only changes the dropout mask type and optimizer kernels)
    masked: bool = True  # batches carry a 4-D mask (padding or packing) instead of plain causal attention

    @property
    def mixed(self) -> bool:
        return self.compute_bytes < 4

    @property
    def tokens(self) -> int:
        return self.micro_batch * self.seq_len


@dataclass(frozen=True)
class MemoryBreakdown:
    """Bytes per item of a training step's peak, and the peak itself."""

    total_params: int
    trainable_params: int
    weights: int
    gradients: int
    optimizer_states: int
    activations: int
    loss_peak: int
    step_temporaries: int
    peak: int
    peak_phase: str  # "backward" or "optimizer step"
    notes: list[tuple[str, str]] = field(default_factory=list)  # (English, Chinese)


# ---- parameters -------------------------------------------------------------------------------


def _lora_targets(shape: ModelShape, names: tuple[str, ...]) -> list[LinearSpec]:
    linears = shape.layer_linears()
    if not names or "all" in names:
        return linears
    wanted = set(names)
    return [spec for spec in linears if spec.name in wanted]


def _freeze_layer_params(shape: ModelShape) -> int:
    return shape.layer_params


def _extra_module_params(shape: ModelShape, names: tuple[str, ...]) -> int:
    table = shape.vocab_size * shape.hidden_size
    sizes = {
        "embed_tokens": table,
        "lm_head": 0 if shape.tie_embeddings else table,
        "norm": shape.hidden_size,
    }
    return sum(sizes.get(name, 0) for name in names)


def count_trainable(shape: ModelShape, setup: TrainSetup) -> int:
    """Parameters the optimizer updates (LoRA adapters are extra parameters on top of the base)."""
    if setup.method == "full":
        return shape.n_params
    if setup.method == "freeze":
        layers = min(abs(setup.freeze_trainable_layers), shape.num_layers)
        return layers * _freeze_layer_params(shape) + _extra_module_params(shape, setup.freeze_extra_modules)
    r = setup.lora_rank
    per_layer = sum(
        r * (spec.in_features + spec.out_features) + (spec.out_features if setup.use_dora else 0)
        for spec in _lora_targets(shape, setup.lora_targets)
    )
    return shape.num_layers * per_layer + _extra_module_params(shape, setup.additional_target)


def _quantized_bytes_per_param(bits: int, double_quant: bool) -> float:
    """bitsandbytes storage per weight: NF4 packs two per byte plus one fp32 absmax per 64-weight block
    (double quantization stores that absmax in 8 bits with an fp32 constant per 256 blocks);
    LLM.int8 stores one byte per weight plus an fp32 scale per row (negligible)."""
    if bits == 8:
        return 1.0
    return 0.5 + ((1 / 64 + 4 / (64 * 256)) if double_quant else 4 / 64)


def _weight_bytes(shape: ModelShape, setup: TrainSetup, trainable: int) -> int:
    c = setup.compute_bytes
    if setup.method == "full":
        return 4 * shape.n_params  # trainable weights are kept in fp32 (tunelab upcasts them)
    if setup.method == "freeze":
        return 4 * trainable + c * (shape.n_params - trainable)
    base = c * shape.n_params
    if setup.quantization_bit is not None:
        linear = shape.num_layers * sum(spec.n_params for spec in shape.layer_linears())
        per = _quantized_bytes_per_param(setup.quantization_bit, setup.double_quantization)
        base = int(per * linear) + c * (shape.n_params - linear)  # embeddings, head, norms stay unquantized
    return base + 4 * trainable


def _trainable_tensors(shape: ModelShape, setup: TrainSetup) -> list[tuple[int, int]]:
    """(rows, cols) of each trainable tensor (cols = 1 for vectors), for factored optimizer states."""
    tensors: list[tuple[int, int]] = []
    h, v = shape.hidden_size, shape.vocab_size
    if setup.method == "lora":
        for spec in _lora_targets(shape, setup.lora_targets):
            tensors += [(setup.lora_rank, spec.in_features), (spec.out_features, setup.lora_rank)]
            if setup.use_dora:
                tensors.append((spec.out_features, 1))
        tensors = tensors * shape.num_layers
        return tensors + [(v, h)] * sum(
            1 for n in setup.additional_target if n in ("embed_tokens", "lm_head")
        )
    layer = [(spec.out_features, spec.in_features) for spec in shape.layer_linears()] + [(h, 1), (h, 1)]
    if setup.method == "freeze":
        return layer * min(abs(setup.freeze_trainable_layers), shape.num_layers)
    head = [] if shape.tie_embeddings else [(v, h)]
    return layer * shape.num_layers + [(v, h), (h, 1)] + head


def optimizer_state_bytes(shape: ModelShape, setup: TrainSetup, trainable: int) -> int:
    """Optimizer state: Adam keeps two fp32 moments (8 bytes/param); 8-bit Adam two 8-bit moments with
    blockwise fp32 scales (~2.03 bytes); SGD one fp32 momentum buffer (none without momentum);
    Adafactor factors the second moment of a matrix into a row and a column vector (no first moment,
    as transformers' Adafactor uses it here)."""
    name = setup.optimizer
    if name in _OPTIMIZERS_ADAM:
        return 8 * trainable
    if name in _OPTIMIZERS_8BIT:
        return int(2.03 * trainable)
    if name == "sgd":
        return 4 * trainable if setup.sgd_momentum > 0 else 0
    if name == "adafactor":
        return sum(
            4 * (rows + cols) if cols > 1 else 4 * rows for rows, cols in _trainable_tensors(shape, setup)
        )
    return 8 * trainable


def _step_temporaries(shape: ModelShape, setup: TrainSetup, trainable: int) -> int:
    """Scratch memory of the optimizer step. On CUDA torch's Adam/SGD use the multi-tensor (foreach)
    kernels, which hold one fp32 temporary per trainable parameter (sqrt of the second moment); on a
    CPU the per-tensor loop needs two temporaries of the largest trainable tensor."""
    largest = max((rows * cols for rows, cols in _trainable_tensors(shape, setup)), default=0)
    if setup.optimizer in _OPTIMIZERS_8BIT:
        return 0
    if setup.optimizer == "adafactor":
        return 3 * 4 * largest
    if setup.device == "cuda":
        return 4 * trainable
    return 2 * 4 * largest


# ---- activations ------------------------------------------------------------------------------


def _attention_bytes(shape: ModelShape, setup: TrainSetup, c: int) -> float:
    """Per token and layer: what attention saves (q, k, v, output, and sdpa's log-sum-exp)."""
    q, kv, heads = shape.q_dim, shape.kv_dim, shape.num_heads
    if setup.attention == "eager":
        # keys/values repeated to every head, the softmax output (fp32, plus its cast copy under autocast)
        return 3 * c * q + c * q + heads * setup.seq_len * (4 + (c if c < 4 else 0))
    if setup.masked and setup.attention == "sdpa" and kv < q:
        # with a 4-D mask transformers repeats keys/values per head before sdpa (no native GQA path)
        return 4 * c * q + 4 * heads
    return 2 * c * q + 2 * c * kv + 4 * heads


def _mlp_inputs(shape: ModelShape) -> tuple[list[int], list[int]]:
    """Input widths of the linear layers reading the first norm's output and the second norm's output."""
    h = shape.hidden_size
    if shape.family == "chatglm":
        return [h], [h]
    return [h, h, h], [h, h]


def _full_layer_bytes(shape: ModelShape, setup: TrainSetup) -> float:
    """Per token: a decoder layer whose weights all train (full fine-tuning, freeze's trainable layers)."""
    h, inter, c = shape.hidden_size, shape.intermediate_size, setup.compute_bytes
    attn_in, mlp_in = _mlp_inputs(shape)
    if setup.mixed:
        # fp32 residual stream: each norm saves its fp32 input and normalised output; every linear
        # layer fed by a norm saves its own bf16 cast of that output
        norms = 2 * 8 * h + c * (sum(attn_in) + sum(mlp_in))
    else:
        norms = 2 * 12 * h  # input, normalised, scaled output (the linear layers' shared input)
    return norms + 8 + _attention_bytes(shape, setup, c) + 4 * c * inter


def _lora_layer_bytes(shape: ModelShape, setup: TrainSetup) -> float:
    """Per token: a frozen decoder layer with LoRA adapters (no adapters: a frozen layer gradients pass)."""
    h, inter, c, r = shape.hidden_size, shape.intermediate_size, setup.compute_bytes, setup.lora_rank
    targets = _lora_targets(shape, setup.lora_targets) if setup.method == "lora" else []
    attn = _attention_bytes(shape, setup, c)
    mlp = 3 * c * inter  # gate (for the activation), activation and up (for their product)
    norms = 2 * 4 * h + 8  # each norm saves its input in fp32 (a copy under autocast)
    # PEFT casts an adapter's input to the adapter's fp32 dtype; a CPU dropout keeps a mask of that
    # dtype, CUDA's fused dropout a bool mask
    mask = (4 if setup.device == "cpu" else 1) if setup.lora_dropout > 0 else 0
    if setup.mixed:
        per_target = sum((c + mask) * spec.in_features + c * r for spec in targets)
        return norms + attn + mlp + per_target
    if mask:
        per_target = sum((4 + mask) * spec.in_features + 4 * r for spec in targets)
        return norms + attn + mlp + per_target
    # fp32 without dropout: adapters share their layer's input tensor with each other
    names = {spec.name for spec in targets}
    shared = 0
    if names & {"q_proj", "k_proj", "v_proj", "query_key_value"}:
        shared += 4 * h
    if names & {"gate_proj", "up_proj", "dense_h_to_4h"}:
        shared += 4 * h
    if names & {"down_proj", "dense_4h_to_h"}:
        shared += 4 * inter
    return norms + attn + mlp + shared + 4 * r * len(targets)


def _checkpoint_bytes(setup: TrainSetup, shape: ModelShape) -> float:
    """Per token and layer with gradient checkpointing: only the layer's input (the residual stream)."""
    residual = 4 if (setup.method == "full" or not setup.mixed) else setup.compute_bytes
    return residual * shape.hidden_size


def activation_bytes(shape: ModelShape, setup: TrainSetup) -> tuple[int, int]:
    """(saved activations at the end of the forward pass, the largest one-layer recompute) in bytes."""
    tokens, L, h = setup.tokens, shape.num_layers, shape.hidden_size
    if setup.method == "full":
        per_layer = [_full_layer_bytes(shape, setup)] * L
        rest = (10 if setup.mixed else 12) * h
    elif setup.method == "freeze":
        n_train = min(abs(setup.freeze_trainable_layers), L)
        frozen_above = 0 if setup.freeze_trainable_layers > 0 else L - n_train  # first layers train
        per_layer = [_full_layer_bytes(shape, setup)] * n_train + [
            _lora_layer_bytes(shape, setup)
        ] * frozen_above
        rest = (4 + setup.compute_bytes) * h
    else:
        per_layer = [_lora_layer_bytes(shape, setup)] * L
        rest = (4 + setup.compute_bytes) * h
    rest += _INT64_PER_TOKEN
    if setup.gradient_checkpointing:
        saved = len(per_layer) * _checkpoint_bytes(setup, shape) + rest
        recompute = max(per_layer, default=0.0)
    else:
        saved, recompute = sum(per_layer) + rest, 0.0
    mask = 0
    if setup.masked and setup.attention != "fa2":
        mask = 8 * setup.seq_len  # the 4-D mask, built in two dtypes (bool, then additive float)
    return int(tokens * (saved + mask)) + autocast_copy_bytes(shape, setup), int(tokens * recompute)


def autocast_copy_bytes(shape: ModelShape, setup: TrainSetup) -> int:
    """The half-precision copy autocast keeps of every trainable fp32 weight for the backward pass
    (none when the weights train in fp32, or are themselves 16-bit as under DeepSpeed's bf16/fp16)."""
    if not (setup.mixed and setup.method in ("full", "freeze")):
        return 0
    L = shape.num_layers
    linear = sum(spec.n_params for spec in shape.layer_linears())
    n_layers = L if setup.method == "full" else min(abs(setup.freeze_trainable_layers), L)
    copies = setup.compute_bytes * n_layers * linear
    if setup.method == "full":
        copies += setup.compute_bytes * shape.lm_head_params
    return copies


def loss_peak_bytes(shape: ModelShape, setup: TrainSetup) -> int:
    """The cross-entropy's peak: fp32 log-softmax output, its gradient and the logits' gradient
    (3 x 4 bytes per vocabulary entry per token; transformers upcasts logits to fp32 for the loss)."""
    return 12 * shape.vocab_size * setup.tokens


def estimate_memory(shape: ModelShape, setup: TrainSetup) -> MemoryBreakdown:
    """Peak tensor memory of one training step on one device (see the module docstring)."""
    trainable = count_trainable(shape, setup)
    weights = _weight_bytes(shape, setup, trainable)
    grads = 4 * trainable
    states = optimizer_state_bytes(shape, setup, trainable)
    acts, recompute = activation_bytes(shape, setup)
    loss = loss_peak_bytes(shape, setup)
    temps = _step_temporaries(shape, setup, trainable)
    accumulated = grads if setup.grad_accum > 1 else 0
    backward = acts + max(loss, recompute) + accumulated
    head_trains = setup.method == "full" or "lm_head" in setup.additional_target
    if head_trains:  # the output layer's weight gradient appears while the logits' gradient is alive
        backward = max(backward, acts + 4 * shape.vocab_size * setup.tokens + 4 * shape.lm_head_params)
    step = grads + temps
    phase = "backward" if backward >= step else "optimizer step"
    notes: list[tuple[str, str]] = []
    if setup.use_dora:
        notes.append(
            (
                "DoRA's weight-norm temporaries are not counted (about one fp32 copy of the largest adapted layer)",
                "未计入 DoRA 计算权重范数的临时内存（约为最大被适配层的一份 fp32 副本）",
            )
        )
    return MemoryBreakdown(
        total_params=shape.n_params,
        trainable_params=trainable,
        weights=weights,
        gradients=grads,
        optimizer_states=states,
        activations=acts,
        loss_peak=loss,
        step_temporaries=temps,
        peak=weights + states + max(backward, step),
        peak_phase=phase,
        notes=notes,
    )


def estimate_eval_memory(shape: ModelShape, setup: TrainSetup, eval_batch: int) -> int:
    """Peak of an evaluation forward pass (no gradients) with ``eval_batch`` rows, during training
    (weights and optimizer states stay in memory): one layer's intermediates at a time, then the
    logits, their fp32 copy under autocast, and the log-softmax."""
    trainable = count_trainable(shape, setup)
    weights = _weight_bytes(shape, setup, trainable)
    states = optimizer_state_bytes(shape, setup, trainable)
    c, tokens = setup.compute_bytes, eval_batch * setup.seq_len
    h, inter = shape.hidden_size, shape.intermediate_size
    layer = c * (3 * inter + 2 * h) + 4 * h  # gate, up, activation + residual, normalised input
    mask = 8 * setup.seq_len if setup.masked else 0  # lives while the layers run, freed before the head
    logits = shape.vocab_size * (c + (4 if c < 4 else 0) + 4) + c * h
    return weights + states + tokens * (max(layer + mask, logits) + _INT64_PER_TOKEN)
