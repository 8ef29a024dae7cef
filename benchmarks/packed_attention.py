"""Attention alone, forward + backward, on real packed rows: sdpa with the block mask vs per-sample sdpa.

    python benchmarks/packed_attention.py                      # SmolLM2 shapes, bf16 and fp32, 2 threads
    python benchmarks/packed_attention.py --quick              # bf16 only, fewer repeats
    python benchmarks/packed_attention.py --buckets 16,32,64,512   # bucket widths to compare

The rows are what a tunelab run trains: SmolLM2's tokenizer, ``instruct_en,chat_sharegpt`` through
tunelab's pipeline, packed at ``--cutoff`` and collated ``--batch`` rows at a time. q, k and v are
random with SmolLM2-135M's head shapes (9 query heads, 3 key/value heads, head dim 64). Each variant
runs one attention layer's forward and backward on every batch; the figure is the median over
batches and repeats, in ms per layer (a step runs 30 of them). The mask (transformers' own
``create_causal_mask``) and the per-sample plan are built once per batch, as a forward pass builds
them once for all layers, and are reported apart. Output: a markdown table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--dataset", default="instruct_en,chat_sharegpt")
    parser.add_argument("--cutoff", type=int, default=512)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="1: timed in CPU time (robust to load)")
    parser.add_argument("--dtypes", default="bf16,fp32")
    parser.add_argument("--buckets", default="32", help="bucket widths of per-sample sdpa to compare")
    parser.add_argument(
        "--flex", action="store_true", help="add torch's flex_attention (eager) with a block mask"
    )
    parser.add_argument("--batches", type=int, default=4, help="packed batches measured")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="bf16 only, 2 batches, 2 repeats")
    args = parser.parse_args(argv)
    if args.quick:
        args.dtypes, args.batches, args.repeats = "bf16", 2, 2
    return args


def packed_batches(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The first ``--batches`` collated batches of packed rows, as a tunelab run builds them."""
    from tunelab.config import load_config
    from tunelab.data.collator import build_collator
    from tunelab.data.pipeline import build_datasets
    from tunelab.model import load_tokenizer

    keys = (
        f"model_name_or_path={args.model} stage=sft dataset={args.dataset} dataset_dir=builtin "
        f"template=chatml cutoff_len={args.cutoff} packing=true output_dir=/tmp/x"
    )
    config = load_config(None, keys.split())
    tokenizer = load_tokenizer(config.model)
    rows = list(build_datasets(config, tokenizer)[0])
    collate = build_collator(tokenizer, packing=True)
    return [collate(rows[i * args.batch : (i + 1) * args.batch]) for i in range(args.batches)]


def attention_runner(how: Any, q: Any, k: Any, v: Any, mask: Any, positions: Any, module: Any) -> Any:
    """A call of one variant's attention on these tensors, returning [batch, length, heads, dim]."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    import tunelab.model.packed_attention as packed

    scale = q.shape[-1] ** -0.5
    if how is None:
        return lambda: sdpa_attention_forward(module, q, k, v, mask, scaling=scale)[0]
    packed.BUCKET = how
    return lambda: packed.packed_sdpa_forward(module, q, k, v, mask, scaling=scale, position_ids=positions)[0]


def measure_batch(
    variants: dict[str, Any], batch: dict[str, Any], dtype: Any, config: Any, module: Any, clock: Any
) -> tuple[dict[str, float], float, float]:
    """Seconds of forward + backward per variant on one batch, and the mask's and plan's build times."""
    import torch
    from transformers.masking_utils import create_causal_mask

    import tunelab.model.packed_attention as packed

    positions = batch["position_ids"]
    b, s = positions.shape
    heads, kv_heads, dim = config.num_attention_heads, config.num_key_value_heads, config.head_dim
    q = torch.randn(b, s, heads, dim, dtype=dtype).transpose(1, 2).requires_grad_()
    k = torch.randn(b, s, kv_heads, dim, dtype=dtype).transpose(1, 2).requires_grad_()
    v = torch.randn(b, s, kv_heads, dim, dtype=dtype).transpose(1, 2).requires_grad_()
    grad = torch.randn(b, s, heads, dim, dtype=dtype)
    embeds = torch.zeros(b, s, 1, dtype=dtype)
    started = clock()
    mask = create_causal_mask(config, embeds, None, None, positions)
    mask_s = clock() - started
    packed._last[:] = [None, None, None]  # a new forward pass: plan afresh
    started = clock()
    packed._plan_for(positions, mask, b, s)
    plan_s = clock() - started
    seconds = {}
    for name, how in variants.items():
        packed._last[:] = [None, None, None]
        run = attention_runner(how, q, k, v, mask, positions, module)
        run()  # warm-up (and the plan's cache)
        started = clock()
        torch.autograd.grad(run(), (q, k, v), grad)
        seconds[name] = clock() - started
    return seconds, mask_s, plan_s


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch
    from transformers import LlamaConfig

    from tunelab.model.packed_attention import plan_segments
    from tunelab.quiet import quiet_libraries

    quiet_libraries()
    torch.set_num_threads(args.threads)
    batches = packed_batches(args)
    # one thread: CPU time of this thread, which other processes on a loaded machine barely change
    clock = time.thread_time if args.threads == 1 else time.perf_counter
    heads, kv_heads, dim = 9, 3, 64  # SmolLM2-135M
    module = torch.nn.Module()
    module.is_causal, module.num_key_value_groups = True, heads // kv_heads
    config = LlamaConfig(hidden_size=heads * dim, num_attention_heads=heads, num_key_value_heads=kv_heads)
    config._attn_implementation = "sdpa"
    variants: dict[str, Any] = {"sdpa + block mask (transformers)": None}
    for width in (int(w) for w in args.buckets.split(",")):
        variants[f"per-sample sdpa, buckets of {width}"] = width
    times: dict[tuple[str, str], list[float]] = {}
    setup: dict[str, list[float]] = {"mask": [], "plan": []}
    for dtype_name in args.dtypes.split(","):
        dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[dtype_name]
        for _ in range(args.repeats):
            for batch in batches:
                seconds, mask_s, plan_s = measure_batch(variants, batch, dtype, config, module, clock)
                setup["mask"].append(mask_s)
                setup["plan"].append(plan_s)
                for name, value in seconds.items():
                    times.setdefault((name, dtype_name), []).append(value)
    n_segments = [len(plan_segments(b["position_ids"], args.batch).lengths) for b in batches]
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"\n{args.model} attention shapes ({heads} heads, {kv_heads} kv heads, dim {dim}), batch {args.batch} x "
        f"{args.cutoff} packed, {statistics.mean(n_segments):.1f} segments per batch; torch threads "
        f"{args.threads} ({clock.__name__}); load average {load}; mask {1000 * statistics.median(setup['mask']):.2f} ms, "
        f"plan {1000 * statistics.median(setup['plan'] or [0]):.2f} ms per forward pass"
    )
    dtypes = args.dtypes.split(",")
    print("\n| attention, forward + backward, ms per layer | " + " | ".join(dtypes) + " |")
    print("| --- |" + " ---: |" * len(dtypes))
    base = {d: statistics.median(times[(next(iter(variants)), d)]) for d in dtypes}
    for name in variants:
        cells = []
        for d in dtypes:
            ms = statistics.median(times[(name, d)])
            cells.append(f"{1000 * ms:.1f} ({base[d] / ms:.1f}x)")
        print(f"| {name} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
