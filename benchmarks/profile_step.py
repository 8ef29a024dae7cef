"""Where a LoRA SFT training step spends its time: torch.profiler over a few steps, per component.

    python benchmarks/profile_step.py                                   # SmolLM2, fp32, cutoff 512 packed
    python benchmarks/profile_step.py --compute-type bf16 --steps 1     # bf16 autocast (emulated on AVX2)
    python benchmarks/profile_step.py --set loss_kernel=standard        # any tunelab key=value overrides

The model, data and collator are tunelab's own (the config below, through ``load_model_for_training``,
``build_datasets`` and ``build_collator``); the step is the one the Trainer runs (forward with labels,
backward, clip, AdamW step, zero_grad), written out so that each part can be labelled. Every leaf
operator's self time is put into one component by its name and shapes: LoRA's rank-r matmuls, the
frozen base projections, the vocabulary projection (a dimension of vocab size) and its
softmax/cross-entropy, attention, dropout, casts/copies, elementwise (norms, rotary, activations),
optimizer; the rest of the wall time is Python and framework overhead. Output: a markdown table.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from typing import Any

COMPONENTS = (
    "base projections (frozen matmuls)",
    "LoRA matmuls (rank r)",
    "vocabulary projection (logits matmul)",
    "softmax + cross-entropy",
    "attention (sdpa kernel)",
    "dropout",
    "casts and copies",
    "elementwise (norms, rotary, activations, adds)",
    "optimizer + grad clip",
    "other operators",
    "autograd and dispatch glue",
)


def classify(name: str, shapes: list[list[int]], vocab: int, rank: int, in_optimizer: bool) -> str:
    """The component an operator's self time belongs to (by name, then by its input shapes)."""
    if in_optimizer:
        return "optimizer + grad clip"
    if "Backward" in name or not name.startswith("aten::"):
        return "autograd and dispatch glue"
    dims = {d for shape in shapes for d in shape}
    if name in ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear"):
        if vocab in dims:
            return "vocabulary projection (logits matmul)"
        if rank in dims:
            return "LoRA matmuls (rank r)"
        return "base projections (frozen matmuls)"
    if "attention" in name or "sdpa" in name:
        return "attention (sdpa kernel)"
    if any(k in name for k in ("softmax", "nll_loss", "cross_entropy", "logsumexp")):
        return "softmax + cross-entropy"
    if vocab in dims and name not in ("aten::embedding", "aten::embedding_dense_backward"):
        return "softmax + cross-entropy"  # elementwise work on B x T x V tensors belongs to the loss
    if any(k in name for k in ("dropout", "bernoulli", "native_dropout")):
        return "dropout"
    if any(k in name for k in ("copy_", "_to_copy", "clone", "contiguous", "cat", "fill_", "zero_")):
        return "casts and copies"
    if any(
        k in name
        for k in ("mul", "add", "silu", "rsqrt", "pow", "mean", "neg", "sigmoid", "div", "sum", "sub")
    ):
        return "elementwise (norms, rotary, activations, adds)"
    return "other operators"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--dataset", default="instruct_en,chat_sharegpt")
    parser.add_argument("--cutoff", type=int, default=512)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--compute-type", default="fp32", choices=("fp32", "bf16"))
    parser.add_argument("--no-packing", action="store_true", help="padded batches instead of packed rows")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3, help="profiled steps")
    parser.add_argument("--threads", type=int, help="torch threads")
    parser.add_argument("--top", type=int, default=0, help="also print the N costliest operators")
    parser.add_argument("--set", nargs="*", default=[], help="extra tunelab key=value overrides")
    return parser.parse_args(argv)


def build(args: argparse.Namespace) -> tuple[Any, Any, Any, Any]:
    """(config, model, (train rows, collator), compute dtype) exactly as a tunelab run builds them."""
    from tunelab.config import load_config
    from tunelab.data.collator import build_collator
    from tunelab.data.pipeline import build_datasets
    from tunelab.model import load_model_for_training, load_tokenizer
    from tunelab.model.precision import resolve_compute_dtype

    keys = (
        f"model_name_or_path={args.model} stage=sft finetuning_type=lora lora_rank=8 lora_target=all "
        f"dataset={args.dataset} dataset_dir=builtin template=chatml cutoff_len={args.cutoff} "
        f"packing={str(not args.no_packing).lower()} compute_type={args.compute_type} output_dir=/tmp/x"
    )
    config = load_config(None, [*keys.split(), *args.set])
    tokenizer = load_tokenizer(config.model)
    dtype = resolve_compute_dtype(config.compute_type)
    model = load_model_for_training(config, dtype)
    train_set, _, _ = build_datasets(config, tokenizer)
    collate = build_collator(tokenizer, packing=config.data.packing)
    return config, model, (train_set, collate), dtype


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch
    from torch.profiler import ProfilerActivity, profile, record_function

    from tunelab.quiet import quiet_libraries

    quiet_libraries()
    if args.threads:
        torch.set_num_threads(args.threads)
    config, model, (train_set, collate), dtype = build(args)
    from tunelab.train.loss import install_training_loss

    print(install_training_loss(model, config.model.loss_kernel))  # as the sft stage does
    vocab = model.config.vocab_size if hasattr(model, "config") else 0
    rank = config.finetuning.lora_rank
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16)
    rows = [train_set[i] for i in range(len(train_set))]

    def batch(i: int) -> dict[str, Any]:
        return collate(rows[(i * args.batch) % len(rows) :][: args.batch])

    def step(i: int) -> tuple[int, int]:
        b = batch(i)
        with autocast:
            loss = model(**b).loss
        loss.backward()
        with record_function("tunelab::optimizer"):
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return int((b["labels"] != -100).sum()), int(b["input_ids"].numel())

    for i in range(args.warmup):
        step(i)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        started = time.perf_counter()
        counted = [step(args.warmup + i) for i in range(args.steps)]
        wall = time.perf_counter() - started
    shares: dict[str, float] = defaultdict(float)
    events = prof.events()
    optimizer_ranges = [
        (e.time_range.start, e.time_range.end) for e in events if e.name == "tunelab::optimizer"
    ]
    for event in events:
        if event.name.startswith("tunelab::"):
            continue
        in_opt = any(a <= event.time_range.start <= b for a, b in optimizer_ranges)
        shares[classify(event.name, list(event.input_shapes or []), vocab, rank, in_opt)] += (
            event.self_cpu_time_total
        )
    total_ops = sum(shares.values()) / 1e6
    step_s = wall / args.steps
    print(
        f"\n{args.model} LoRA r={rank}, {config.compute_type}, batch {args.batch} x cutoff {args.cutoff}, "
        f"packing={config.data.packing}, torch threads {torch.get_num_threads()}: {step_s:.2f} s/step, "
        f"{sum(c[1] for c in counted) / args.steps:.0f} tokens/step ({sum(c[0] for c in counted) / args.steps:.0f} with labels)"
    )
    print("\n| component | share of step time | ms per step |\n| --- | ---: | ---: |")
    for name in COMPONENTS:
        ms = shares.get(name, 0.0) / 1e3 / args.steps
        print(f"| {name} | {100 * ms / 1e3 / step_s:.1f}% | {ms:,.0f} |")
    if args.top:
        print(
            prof.key_averages(group_by_input_shape=True).table(
                sort_by="self_cpu_time_total", row_limit=args.top
            )
        )
    rest = wall - total_ops
    print(
        f"| Python, autograd and Trainer-free overhead (wall - operators) | {100 * rest / wall:.1f}% | {1000 * rest / args.steps:,.0f} |"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
