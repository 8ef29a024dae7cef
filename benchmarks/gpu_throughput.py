"""Training throughput on a CUDA GPU: LoRA / QLoRA / full SFT of random-initialised 1.5B and 8B shapes.

    python benchmarks/gpu_throughput.py                  # on one H100/H200: about 6 minutes
    python benchmarks/gpu_throughput.py --quick          # 1.5B only, shorter windows
    python benchmarks/gpu_throughput.py --tiny           # any machine (CPU too): a tiny shape, seconds

No weights are needed: each model is built from its published architecture (tunelab's estimate
presets ``qwen2.5-1.5b`` and ``llama3-8b``) with random values, in bf16 on the GPU. Every case trains
one packed row of ``--seq`` tokens (2k-4k; the first 30% of each row is an unlabelled "prompt") for
``--warmup`` + ``--steps`` AdamW steps and reports, for the measured steps:

- tokens/s and MFU: 4 x parameters FLOPs per token for LoRA/QLoRA (frozen weights: forward plus input
  gradient), 6 x for full fine-tuning, plus attention's 12 x layers x hidden x seq / 2 (causal), over
  the bf16 matmul peak measured on the device in the same run (8192^3 products);
- peak memory (``torch.cuda.max_memory_allocated``; on CPU the tensor peak counted by
  ``tunelab.tune.memtrack``) next to ``tunelab estimate``'s figure for the same settings;
- variants: ``plain`` (transformers + PEFT as the docs show it: sdpa, the model's own loss), ``tunelab``
  (tunelab's attention choice (flash-attention 2 where installed), its fused loss from hidden states
  on label positions (Liger's kernel where installed, else chunked), and ``tunelab+liger``
  (``enable_liger_kernel``: Liger's RMSNorm/RoPE/SwiGLU kernels too) where liger-kernel is installed.

QLoRA needs bitsandbytes (and a GPU); cases that cannot run here are listed with the reason instead of
a figure. Results go to stdout as a markdown table and, unless ``--no-docs`` or ``--tiny``, to
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _speed import measured_peak  # noqa: E402
from _tune_docs import machine_lines, markdown_table, update_docs  # noqa: E402

IGNORE_INDEX = -100
PROMPT_SHARE = 0.3
COLUMNS = (
    "model|method|variant|seq|tokens/s|vs plain|MFU (vs measured peak)|peak memory MiB|estimate MiB|estimate error"
).split("|")


@dataclass
class Case:
    shape_name: str  # a tunelab.tune.presets name, or "tiny"
    method: str  # lora | qlora | full
    variant: str  # plain | tunelab | tunelab+liger
    seq: int


def plan(args: argparse.Namespace) -> list[Case]:
    """The cases of this run: shapes x methods x variants (full fine-tuning only for the 1.5B shape)."""
    if args.tiny:
        shapes, methods = ["tiny"], ["lora", "qlora", "full"]
    elif args.quick:
        shapes, methods = ["qwen2.5-1.5b"], ["lora", "qlora", "full"]
    else:
        shapes, methods = ["qwen2.5-1.5b", "llama3-8b"], ["lora", "qlora", "full"]
    variants = ["plain", "tunelab", "tunelab+liger"]
    return [
        Case(shape, method, variant, args.seq)
        for shape in shapes
        for method in methods
        if not (method == "full" and shape == "llama3-8b")  # 8B full AdamW needs > 80 GB
        for variant in variants
    ]


def model_shape(name: str) -> Any:
    from tunelab.tune.presets import find_preset
    from tunelab.tune.shape import ModelShape

    if name == "tiny":
        return ModelShape("tiny", 64, 2, 4, 2, 16, 128, 512, qkv_bias=True, tie_embeddings=True)
    return find_preset(name).shape


def hf_config(shape: Any) -> Any:
    """A transformers config of ``shape``: Qwen2 where q/k/v carry a bias, else Llama."""
    from transformers import LlamaConfig, Qwen2Config

    cls = Qwen2Config if shape.qkv_bias else LlamaConfig
    return cls(
        hidden_size=shape.hidden_size,
        num_hidden_layers=shape.num_layers,
        num_attention_heads=shape.num_heads,
        num_key_value_heads=shape.num_kv_heads,
        head_dim=shape.head_dim,
        intermediate_size=shape.intermediate_size,
        vocab_size=shape.vocab_size,
        tie_word_embeddings=shape.tie_embeddings,
        max_position_embeddings=max(8192, shape.max_position or 0),
        use_cache=False,
    )


def skip_reason(case: Case, cuda: bool) -> str | None:
    """Why ``case`` cannot run on this machine (None: it can)."""
    if case.method == "qlora" and not (cuda and importlib.util.find_spec("bitsandbytes")):
        return "needs a CUDA GPU and bitsandbytes"
    if case.variant == "tunelab+liger" and not (cuda and importlib.util.find_spec("liger_kernel")):
        return "needs a CUDA GPU and liger-kernel"
    return None


def _quantize_4bit(model: Any, compute_dtype: Any) -> None:
    """Swap every decoder Linear for a bitsandbytes NF4 Linear4bit (quantized when moved to the GPU)."""
    import bitsandbytes as bnb
    import torch

    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, torch.nn.Linear) and "lm_head" not in f"{name}.{child_name}":
                q = bnb.nn.Linear4bit(
                    child.in_features, child.out_features, child.bias is not None,
                    compute_dtype=compute_dtype, quant_type="nf4", compress_statistics=True,
                )  # fmt: skip
                q.weight = bnb.nn.Params4bit(child.weight.data, requires_grad=False, quant_type="nf4")
                if child.bias is not None:
                    q.bias = child.bias
                setattr(module, child_name, q)


def build_model(case: Case, device: str) -> tuple[Any, int]:
    """(trainable model, total parameters) for ``case``: random weights, LoRA r=16 on all linear layers."""
    import torch
    from transformers import AutoModelForCausalLM

    from tunelab.model.attention import resolve_attn_implementation

    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    attn = "sdpa" if case.variant == "plain" else resolve_attn_implementation("auto")
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(
        hf_config(model_shape(case.shape_name)), dtype=dtype, attn_implementation=attn
    )
    total = sum(p.numel() for p in model.parameters())
    if case.method == "qlora":
        _quantize_4bit(model, dtype)
    model.to(device)
    if case.method != "full":
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(
            task_type="CAUSAL_LM", r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear"
        )
        model = get_peft_model(model, lora)
        for (
            p
        ) in model.parameters():  # trainable LoRA weights in fp32, as tunelab's apply_finetuning keeps them
            if p.requires_grad:
                p.data = p.data.float()
    if case.variant.startswith("tunelab"):
        from tunelab.train.loss import install_training_loss

        install_training_loss(model, "auto")
    if case.variant == "tunelab+liger":
        from liger_kernel.transformers import _apply_liger_kernel_to_instance

        _apply_liger_kernel_to_instance(
            model=model.get_base_model() if hasattr(model, "get_base_model") else model
        )
    return model.train(), total


def batch(case: Case, vocab: int, device: str) -> dict[str, Any]:
    import torch

    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, vocab, (1, case.seq), generator=g)
    labels = ids.clone()
    labels[:, : int(PROMPT_SHARE * case.seq)] = IGNORE_INDEX
    return {"input_ids": ids.to(device), "labels": labels.to(device)}


def estimate_mib(case: Case, device: str) -> float:
    """`tunelab estimate`'s peak for this case (same shape, method, precision, tokens, attention)."""
    from tunelab.tune.memory import TrainSetup, estimate_memory

    setup = TrainSetup(
        method="full" if case.method == "full" else "lora",
        compute_bytes=2 if device == "cuda" else 4,
        seq_len=case.seq,
        lora_rank=16,
        lora_dropout=0.0,
        quantization_bit=4 if case.method == "qlora" else None,
        attention="fa2" if case.variant != "plain" and importlib.util.find_spec("flash_attn") else "sdpa",
        device=device,
        masked=False,
    )
    return estimate_memory(model_shape(case.shape_name), setup).peak / 2**20


def run_case(case: Case, args: argparse.Namespace, device: str) -> dict[str, Any]:
    """Train ``case`` for warm-up + measured steps; tokens/s, peak memory and the step times."""
    import torch

    model, total = build_model(case, device)
    params = [p for p in model.parameters() if p.requires_grad]
    fused = device == "cuda"
    optimizer = torch.optim.AdamW(params, lr=1e-5, fused=fused)
    data = batch(case, model_shape(case.shape_name).vocab_size, device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda")

    def step() -> None:
        with autocast:
            loss = model(**data).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(args.warmup):
        step()
    sync()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        tracker = None
    else:
        from tunelab.tune.memtrack import TensorMemoryTracker

        tracker = TensorMemoryTracker()
    times = []
    for i in range(args.steps):
        started = time.perf_counter()
        if tracker is not None and i == 0:  # the tracker slows a step: count memory on one, time the others
            with tracker:
                step()
            continue
        step()
        sync()
        times.append(time.perf_counter() - started)
    if device == "cuda":
        peak = torch.cuda.max_memory_allocated()
    else:  # the tracker counts above its start: add what lived then (weights, optimizer states)
        states = [t for s in optimizer.state.values() for t in s.values() if torch.is_tensor(t)]
        resident = {
            t.untyped_storage().data_ptr(): t.untyped_storage().nbytes()
            for t in [*model.parameters(), *states]
        }
        peak = tracker.peak + sum(resident.values())
    model = optimizer = params = None  # free the GPU memory before the next case
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
    seconds = statistics.median(times)
    return {"tokens_per_second": case.seq / seconds, "peak_mib": peak / 2**20, "params": total}


def model_flops_per_token(case: Case, params: int) -> float:
    shape = model_shape(case.shape_name)
    per_param = 6 if case.method == "full" else 4
    attention = 12 * shape.num_layers * shape.hidden_size * case.seq / 2  # causal: half the scores
    return per_param * params + attention * (1.5 if case.method == "full" else 1.0)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="a tiny shape that runs anywhere (CPU too)")
    parser.add_argument("--quick", action="store_true", help="the 1.5B shape only")
    parser.add_argument("--seq", type=int, help="tokens per row (default 4096; --tiny: 64)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, help="measured steps (default 6; --tiny: 3)")
    parser.add_argument("--no-docs", action="store_true", help="leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)
    args.seq = args.seq or (64 if args.tiny else 4096)
    args.steps = args.steps or (3 if args.tiny else 6)
    if args.steps < 2:
        parser.error("--steps must be >= 2 (on CPU the first measured step counts memory)")
    return args


def main(argv: list[str] | None = None) -> list[list[str]]:
    """Run every case; print (and record) the table; return its rows (the test reads them)."""
    args = parse_args(argv)
    import torch

    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    if not cuda and not args.tiny:
        raise SystemExit("no CUDA GPU here: run with --tiny to check the script end to end on a CPU")
    peak = measured_peak("bf16" if cuda else "fp32", device=device, seconds=0.5 if args.tiny else 2.0)
    rows: list[list[str]] = []
    plain_speed: dict[tuple[str, str], float] = {}
    started = time.perf_counter()
    for case in plan(args):
        label = [case.shape_name, case.method, case.variant, str(case.seq)]
        reason = skip_reason(case, cuda)
        if reason:
            rows.append([*label, f"skipped: {reason}", "", "", "", "", ""])
            continue
        result = run_case(case, args, device)
        speed = result["tokens_per_second"]
        if case.variant == "plain":
            plain_speed[(case.shape_name, case.method)] = speed
        base = plain_speed.get((case.shape_name, case.method))
        est = estimate_mib(case, device)
        use = speed * model_flops_per_token(case, result["params"]) / peak
        rows.append(
            [*label, f"{speed:,.0f}", f"{speed / base:.2f}x" if base else "", f"{100 * use:.1f}%",
             f"{result['peak_mib']:,.1f}", f"{est:,.1f}", f"{100 * (est - result['peak_mib']) / result['peak_mib']:+.0f}%"]
        )  # fmt: skip
        print(" | ".join(rows[-1]), flush=True)
    name = torch.cuda.get_device_name() if cuda else "CPU (--tiny)"
    lines = [
        f"### GPU training throughput: {name}",
        "",
        f"- command: `python benchmarks/gpu_throughput.py {' '.join(sys.argv[1:] if argv is None else argv)}`",
        *machine_lines(),
        f"- measured matmul peak ({'bf16' if cuda else 'fp32'}): {peak / 1e12:.1f} TFLOP/s; total run time "
        f"{time.perf_counter() - started:.0f} s; {args.warmup} warm-up + {args.steps} measured steps per case",
        "",
        *markdown_table(COLUMNS, rows),
    ]
    print("\n".join(lines))
    if not (args.no_docs or args.tiny):
        update_docs("gpu_throughput", "\n".join(lines) + "\n")
    return rows


if __name__ == "__main__":
    main()
