"""A whole LoRA SFT step with and without per-sample attention, in one process, steps alternating.

    python benchmarks/packed_step.py                          # SmolLM2, bf16, cutoff 512 packed, 1 thread
    python benchmarks/packed_step.py --compute-type fp32 --steps 2

Two copies of the model are built as a tunelab run builds them (``profile_step.build``): one with
``flash_attn=sdpa`` (transformers' sdpa and its block-diagonal mask), one with ``flash_attn=auto``
(per-sample sdpa on CPU). They train the same batches (spread over the epoch, since packed rows come longest samples
first), one step each in turn, so load changes hit
both alike. With ``--threads 1`` (the default) a step is timed in CPU time of the training thread,
which other processes on a shared machine barely change; with more threads, in wall time.
Output: a markdown table of the median step time and tokens per second.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from profile_step import build  # noqa: E402

VARIANTS = {"sdpa + block mask (flash_attn=sdpa)": "sdpa", "per-sample sdpa (flash_attn=auto)": "auto"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--dataset", default="instruct_en,chat_sharegpt")
    parser.add_argument("--cutoff", type=int, default=512)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--compute-type", default="bf16", choices=("fp32", "bf16"))
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3, help="measured steps per variant")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    args.no_packing = False
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    from tunelab.compat.transformers import attn_implementation
    from tunelab.quiet import quiet_libraries
    from tunelab.train.loss import install_training_loss

    quiet_libraries()
    torch.set_num_threads(args.threads)
    clock = time.thread_time if args.threads == 1 else time.perf_counter
    runs: dict[str, Any] = {}
    for name, setting in VARIANTS.items():
        args.set = [f"flash_attn={setting}"]
        config, model, (train_set, collate), dtype = build(args)
        install_training_loss(model, config.model.loss_kernel)  # as the sft stage does
        model.train()
        params = [p for p in model.parameters() if p.requires_grad]
        runs[name] = (model, params, torch.optim.AdamW(params, lr=1e-4), attn_implementation(model.config))
    rows = [train_set[i] for i in range(len(train_set))]
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16)
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    tokens = []
    # packed rows come longest samples first (first-fit-decreasing): spread the steps over the epoch
    stride = max(args.batch, len(rows) // (args.warmup + args.steps) // args.batch * args.batch)
    for i in range(args.warmup + args.steps):
        batch = collate(rows[i * stride :][: args.batch])
        for name, (model, params, optimizer, _) in runs.items():
            started = clock()
            with autocast:
                loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if i >= args.warmup:
                seconds[name].append(clock() - started)
        if i >= args.warmup:
            tokens.append(int(batch["input_ids"].numel()))
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"\n{args.model} LoRA r=8, {args.compute_type}, batch {args.batch} x cutoff {args.cutoff} packed, "
        f"{args.steps} steps after {args.warmup} warm-up, torch threads {args.threads} ({clock.__name__}); "
        f"load average {load}"
    )
    print("\n| attention | implementation | step s (median) | each step | row tokens/s | vs sdpa |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    base = statistics.median(next(iter(seconds.values())))
    for name, values in seconds.items():
        median = statistics.median(values)
        each = " ".join(f"{v:.2f}" for v in values)
        rate = sum(tokens) / sum(values)
        print(f"| {name} | {runs[name][3]} | {median:.2f} | {each} | {rate:,.0f} | {base / median:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
