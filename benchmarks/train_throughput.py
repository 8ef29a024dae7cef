"""Training throughput of ``tunelab.train`` against a plain transformers Trainer + PEFT LoRA baseline.

    python benchmarks/train_throughput.py                       # tiny:llama, a minute or two
    python benchmarks/train_throughput.py --model smollm2       # SmolLM2-135M, a few minutes
    python benchmarks/train_throughput.py --variants baseline,tunelab,tunelab-lean --profile
    python benchmarks/train_throughput.py --model smollm2-512 --threads 2      # realistic: cutoff 512 packed
    python benchmarks/train_throughput.py --model demo --threads 2             # `make demo`'s training

One process, one tokenized dataset (built once with tunelab's pipeline), the same collator, batch
size, steps, seed and hyperparameters for every variant:

  baseline      transformers ``Trainer`` + ``peft`` LoRA (r=8, all linear layers), default callbacks
                minus the console printer: what a user writes by hand
  tunelab       ``tunelab.train.train(config)`` with the equivalent config, as a user runs it
  tunelab-lean  the same with ``plot_loss=false disable_tqdm=true`` (attributes their cost); any
                ``tunelab+key=value+...`` variant runs tunelab with those overrides
  baseline-bf16 the same with ``bf16=True`` (autocast), what the transformers docs show for speed
  trl           TRL ``SFTTrainer`` on the same tokenized data and collator (fp32, no checkpointing)
  tunelab-bf16  tunelab with ``compute_type=bf16``
  lf            LLaMA-Factory's ``run_exp`` in its own interpreter (``--lf-python PATH``), same keys

Presets whose name says so (``smollm2-512``, ``demo``) turn ``packing`` on for tunelab (and LF's
``neat_packing``), while the plain baselines and TRL get ordinary padded batches of the same samples,
as a user writing them by hand would; tokens/s counts non-padding tokens either way, per layout.
MFU is achieved model FLOP/s (4 x parameters per token: forward plus the input-gradient backward of
frozen weights, the convention of issue 15, LoRA's own FLOPs and attention not counted) over the
matmul peak this script measures on the same threads in the variant's precision (fp32 or bf16).
Peak memory is the process's peak resident size during the run, above its size at the start (glibc's
free pages returned with ``malloc_trim`` first), sampled every 20 ms.

Only training steps count: the window runs from the end of the last warm-up step to the end of the
last step, so loading, data preparation and final saving are outside it, while everything a wrapper
does between steps (callbacks, logging, plots) is inside. Tokens are the non-padding tokens of the
batches in the window (the batch order is seeded; each tunelab run checks it against its own log).
Variants alternate order between repeats so drift cancels; ratios are medians of per-repeat ratios.
``--profile`` adds a cProfile pass of baseline and tunelab that records only inside the window.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _speed import PeakRSS, measured_peak, mfu  # noqa: E402
from _tune_docs import DOCS, ROOT, machine_lines, markdown_table, update_docs  # noqa: E402

# The tiny model takes ~30 ms a step: 100 steps with logging_steps 10 hold 10 log rows and 2 plot
# redraws (tunelab redraws every 5th row), the steady-state rate. SmolLM2 in fp32 takes seconds a step.
PRESET_KEYS = ("dataset", "cutoff", "batch", "steps", "warmup", "repeats", "logging_steps")
PRESETS = {
    "tiny:llama": ("instruct_en", 256, 8, 100, 3, 5, 10),
    "smollm2": ("identity_en", 128, 4, 6, 2, 2, 5),
    # realistic lengths: instruction + multi-turn chat data packed into 512-token rows
    "smollm2-512": ("instruct_en,chat_sharegpt", 512, 2, 4, 1, 2, 1),
    # `make demo`'s training (tunelab.demo.DEMO_CONFIG): identity data, cutoff 128, packed, batch 4
    "demo": ("identity_en,identity_zh", 128, 4, 6, 2, 2, 5),
}
PACKED_PRESETS = ("smollm2-512", "demo")
PRESET_MODEL = {"smollm2-512": "smollm2", "demo": "smollm2"}
ALL_VARIANTS = ("baseline", "baseline-bf16", "tunelab", "tunelab-bf16", "tunelab-lean", "trl", "lf")
# what the profile report lists: tunelab's code, the Trainer's step pieces and every callback
PROFILE_FOCUS = (
    r"tunelab/|trainer_callback|training_step|_maybe_log_save_evaluate|_track_num_input|call_event"
)


@dataclass
class Setup:
    """What every variant shares: the tunelab config, the data and the step schedule."""

    config: Any  # tunelab RunConfig (unpacked: what the plain variants get)
    model_path: Path
    tokenizer: Any
    train_set: Any
    collator: Any
    warmup: int
    steps: int
    packed: bool = False  # tunelab and LF variants train packed rows
    packed_set: Any = None
    packed_collator: Any = None
    n_params: int = 0
    # non-padding tokens of the i-th batch trained, per layout ("padded", "packed")
    step_tokens: dict[str, list[int]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def max_steps(self) -> int:
        return self.warmup + self.steps

    def window_tokens(self, layout: str) -> int:
        return sum(self.step_tokens[layout][self.warmup : self.max_steps])


@dataclass
class Measurement:
    variant: str
    seconds: float
    tokens: int
    step_seconds: list[float]
    note: str = ""
    peak_mib: float = 0.0

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds

    @property
    def median_step(self) -> float:
        return statistics.median(self.step_seconds)


# What a user would put on the command line: `tunelab train key=value ...` (save_steps 500, the
# default, puts no checkpoint inside the window). Every other variant mirrors these values.
USER_KEYS = (
    "stage=sft finetuning_type=lora lora_rank=8 lora_target=all dataset_dir=builtin template=chatml "
    "learning_rate=1e-3 lr_scheduler_type=cosine warmup_ratio=0.1 save_steps=500 compute_type=fp32 "
    "overwrite_output_dir=true"
)


def build_config(args: argparse.Namespace, output_dir: Path, *extra: str) -> Any:
    """The tunelab config of this benchmark, validated the way `tunelab train` validates it."""
    from tunelab.config import load_config

    run_keys = (
        f"model_name_or_path={PRESET_MODEL.get(args.model, args.model)} dataset={args.dataset} "
        f"cutoff_len={args.cutoff} "
        f"per_device_train_batch_size={args.batch} max_steps={args.warmup + args.steps} "
        f"logging_steps={args.logging_steps} output_dir={output_dir}"
    )
    return load_config(None, [*USER_KEYS.split(), *run_keys.split(), *extra])


def prepare(args: argparse.Namespace, scratch: Path) -> Setup:
    """Build the tokenized data once with tunelab's pipeline, and the token count of each step."""
    from tunelab.data.collator import build_collator
    from tunelab.data.pipeline import build_datasets
    from tunelab.model import load_tokenizer, resolve_model_path

    config = build_config(args, scratch / "run")
    tokenizer = load_tokenizer(config.model)
    packed = None
    if args.packed:  # the plain variants get the same samples per step, padded instead of packed
        packed_config = build_config(args, scratch / "run", "packing=true")
        packed = build_datasets(packed_config, tokenizer)
        per_row = packed[2].n_train / packed[2].n_train_sequences
        plain_batch = max(1, round(args.batch * per_row))
        config = build_config(args, scratch / "run", f"per_device_train_batch_size={plain_batch}")
    train_set, _, stats = build_datasets(config, tokenizer)
    setup = Setup(
        config=config,
        model_path=resolve_model_path(config.model.model_name_or_path, config.model.cache_dir),
        tokenizer=tokenizer,
        train_set=train_set,
        collator=build_collator(tokenizer, packing=False),
        warmup=args.warmup,
        steps=args.steps,
        packed=args.packed,
        notes=[stats.describe()],
    )
    setup.step_tokens["padded"] = batch_token_counts(setup, scratch / "order", train_set, setup.collator)
    if packed is not None:
        setup.packed_set, _, packed_stats = packed
        setup.packed_collator = build_collator(tokenizer, packing=True)
        setup.step_tokens["packed"] = batch_token_counts(
            setup, scratch / "order", setup.packed_set, setup.packed_collator, batch=args.batch
        )
        setup.notes.append(
            f"packed (tunelab, lf): {packed_stats.n_train_sequences} rows of <= {args.cutoff} tokens, "
            f"batch {args.batch}; padded (baseline, baseline-bf16, trl): batch "
            f"{config.training.per_device_train_batch_size}, the same samples per step on average"
        )
    for layout in setup.step_tokens:
        setup.notes.append(
            f"window ({layout}): steps {setup.warmup + 1}..{setup.max_steps}, "
            f"{setup.window_tokens(layout):,} non-padding tokens per run"
        )
    # tunelab's first plot imports matplotlib, once per process: pay it here so that every repeat
    # sees the steady state instead of only the first tunelab run carrying it
    started = time.perf_counter()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401

    setup.notes.append(
        f"outside the window: importing matplotlib took {time.perf_counter() - started:.2f} s "
        "(a tunelab run pays it once, at its first plot)"
    )
    return setup


def batch_token_counts(
    setup: Setup, output_dir: Path, dataset: Any, collator: Any, batch: int | None = None
) -> list[int]:
    """Non-padding tokens per step, in the order every Trainer-based variant draws the batches.

    The order is the Trainer's seeded sampler's (same seed, dataset and batch size), so a Trainer that
    never trains yields it; each tunelab run checks it against its own logged token count.
    """
    from transformers import Trainer

    model = _plain_model(setup)
    setup.n_params = sum(p.numel() for p in model.base_model.model.parameters())
    trainer = Trainer(
        model=model,
        args=_plain_arguments(setup, output_dir, batch=batch),
        train_dataset=dataset,
        data_collator=collator,
    )
    loader = trainer.get_train_dataloader()
    counts: list[int] = []
    epoch = 0
    while len(counts) < setup.max_steps:
        loader.set_epoch(epoch)  # as the Trainer's loop does: the sampler is seeded with seed + epoch
        counts.extend(_non_padding(b, setup.tokenizer.pad_token_id) for b in loader)
        epoch += 1
    return counts


def _non_padding(batch: dict[str, Any], pad_id: int) -> int:
    """Non-padding tokens as the Trainer counts them: the attention mask, else tokens != pad (packed
    rows carry no mask; where pad is EOS this leaves out each sample's EOS, a bias against packing)."""
    if "attention_mask" in batch:
        return int(batch["attention_mask"].sum())
    return int((batch["input_ids"] != pad_id).sum())


def _plain_model(setup: Setup) -> Any:
    """The base model plus a PEFT LoRA, written the way the PEFT docs show it."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    ft = setup.config.finetuning
    model = AutoModelForCausalLM.from_pretrained(setup.model_path, dtype=torch.float32)
    model.config.use_cache = False  # no KV cache in training (tunelab and TRL turn it off too)
    lora = LoraConfig(
        task_type="CAUSAL_LM",
        r=ft.lora_rank,
        lora_alpha=ft.effective_lora_alpha,
        lora_dropout=ft.lora_dropout,
        target_modules="all-linear",
    )
    return get_peft_model(model, lora)


def _plain_arguments(
    setup: Setup, output_dir: Path, cls: Any = None, batch: int | None = None, **extra: Any
) -> Any:
    """TrainingArguments with the tunelab config's hyperparameters, everything else left default."""
    from transformers import TrainingArguments

    t = setup.config.training
    same = ("learning_rate", "lr_scheduler_type", "weight_decay", "max_grad_norm", "optim", "seed")
    return (cls or TrainingArguments)(
        **{key: getattr(t, key) for key in same},
        per_device_train_batch_size=batch or t.per_device_train_batch_size,
        output_dir=str(output_dir),
        max_steps=setup.max_steps,
        warmup_steps=t.warmup_ratio,  # transformers 5: a value below 1 is a ratio
        logging_steps=setup.config.output.logging_steps,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        remove_unused_columns=False,
        **extra,
    )


def _train_plain(trainer: Any) -> None:
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # disable_tqdm swaps the bar for this printer
    trainer.train()


def run_baseline(setup: Setup, output_dir: Path, bf16: bool = False) -> None:
    from transformers import Trainer, set_seed

    set_seed(setup.config.training.seed)
    _train_plain(
        Trainer(
            model=_plain_model(setup),
            args=_plain_arguments(setup, output_dir, bf16=bf16),
            train_dataset=setup.train_set,
            data_collator=setup.collator,
            processing_class=setup.tokenizer,
        )
    )


def run_trl(setup: Setup, output_dir: Path) -> None:
    from transformers import set_seed
    from trl import SFTConfig, SFTTrainer

    set_seed(setup.config.training.seed)
    # SFTConfig defaults to bf16 and gradient checkpointing: switched off to compare the same work
    no_extras = {"bf16": False, "gradient_checkpointing": False, "max_length": None}
    skip = {"skip_prepare_dataset": True}  # the data is already tokenized by tunelab's pipeline
    args = _plain_arguments(setup, output_dir, SFTConfig, dataset_kwargs=skip, **no_extras)
    _train_plain(
        SFTTrainer(
            model=_plain_model(setup),
            args=args,
            train_dataset=setup.train_set,
            data_collator=setup.collator,
            processing_class=setup.tokenizer,
        )
    )


def tunelab_runner(args: argparse.Namespace, *overrides: str) -> Callable[[Setup, Path], str]:
    """A variant calling tunelab.train.train as a user would; it returns tunelab's own figure."""

    def run(setup: Setup, output_dir: Path) -> str:
        from tunelab.runs import RunDir
        from tunelab.train import train

        packing = ("packing=true",) if setup.packed else ()
        result = train(build_config(args, output_dir, *packing, *overrides))
        tokens = setup.step_tokens["packed" if setup.packed else "padded"]
        for row in RunDir(result.run_dir).read_log():  # was the assumed batch order the one trained?
            expected = sum(tokens[: row["current_steps"]])
            if row.get("num_input_tokens_seen", expected) != expected:
                raise SystemExit(
                    f"batch order differs: at step {row['current_steps']} tunelab logged "
                    f"{row['num_input_tokens_seen']} tokens, the benchmark expected {expected}"
                )
        return f"tunelab's own figure: {result.metrics.get('tokens_per_second', 0):,.0f} tok/s"

    return run


def layout_of(name: str, setup: Setup) -> str:
    """Which batches a variant trains: tunelab and LF pack when the preset packs, the others pad."""
    return "packed" if setup.packed and (name.startswith("tunelab") or name == "lf") else "padded"


def precision_of(name: str) -> str:
    return "bf16" if "bf16" in name else "fp32"


def measure(
    name: str, runner: Callable[[Setup, Path], Any], setup: Setup, scratch: Path, profiler: Any = None
) -> Measurement:
    """Run one variant, stamping the end of every optimizer step (profiling the window if asked).

    torch's global optimizer-step hook sees every trainer alike without touching any of them.
    """
    from torch.optim.optimizer import register_optimizer_step_post_hook

    stamps: list[float] = []

    def on_step(*_: Any) -> None:
        stamps.append(time.perf_counter())
        if profiler is not None and len(stamps) in (setup.warmup, setup.max_steps):
            (profiler.enable if len(stamps) == setup.warmup else profiler.disable)()

    handle = register_optimizer_step_post_hook(on_step)
    try:
        with PeakRSS() as memory:
            note = runner(setup, Path(tempfile.mkdtemp(prefix=f"{name}-", dir=scratch))) or ""
    finally:
        handle.remove()
    tokens = setup.window_tokens(layout_of(name, setup))
    if isinstance(note, tuple):  # an out-of-process run (lf) reports its own stamps and tokens
        note, stamps, tokens = note
    if len(stamps) != setup.max_steps:
        raise RuntimeError(f"{name}: expected {setup.max_steps} optimizer steps, saw {len(stamps)}")
    inside = stamps[setup.warmup - 1 :]  # from the end of the last warm-up step to the end of the run
    steps = [b - a for a, b in zip(inside, inside[1:])]
    return Measurement(name, inside[-1] - inside[0], tokens, steps, note, memory.growth_mib)


def run_all(args: argparse.Namespace, setup: Setup, scratch: Path) -> dict[str, list[Measurement]]:
    """Every variant ``repeats`` times in alternating order; then the optional profile passes."""
    runners: dict[str, Callable[[Setup, Path], Any]] = {
        "baseline": run_baseline,
        "baseline-bf16": lambda setup, out: run_baseline(setup, out, bf16=True),
        "tunelab": tunelab_runner(args),
        "tunelab-bf16": tunelab_runner(args, "compute_type=bf16"),
        "tunelab-lean": tunelab_runner(args, "plot_loss=false", "disable_tqdm=true"),
        "trl": run_trl,
    }
    if args.lf_python:
        from _lf_runner import lf_runner

        runners["lf"] = lf_runner(args)
    for name in args.variants:  # tunelab+key=value+...: tunelab with those overrides
        runners.setdefault(name, tunelab_runner(args, *name.split("+")[1:]))
    results: dict[str, list[Measurement]] = {name: [] for name in args.variants}
    for repeat in range(args.repeats):
        for name in args.variants if repeat % 2 == 0 else reversed(args.variants):
            m = measure(name, runners[name], setup, scratch)
            results[name].append(m)
            print(
                f"repeat {repeat + 1}/{args.repeats} {name:>12}: {m.tokens_per_second:8,.0f} tok/s "
                f"({m.seconds:.2f} s, median step {1000 * m.median_step:.1f} ms)  {m.note}",
                flush=True,
            )
    if args.profile:
        import cProfile
        import pstats

        for name in ("baseline", "tunelab"):
            profiler = cProfile.Profile()
            measure(name, runners[name], setup, scratch, profiler)
            dump = Path(tempfile.gettempdir()) / f"tunelab-bench-{name}.pstats"
            profiler.dump_stats(dump)  # for a closer look: python -m pstats <file>, or snakeviz
            print(f"\n{name}: cProfile of the {args.steps} measured steps only (saved to {dump})")
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(PROFILE_FOCUS, 25)
    return results


def reference_of(results: dict[str, Any]) -> str:
    """The variant the ratios are taken against: plain fp32 Trainer + PEFT, else its bf16 run."""
    return "baseline" if "baseline" in results else "baseline-bf16"


def summarise(
    results: dict[str, list[Measurement]], n_params: int, peaks: dict[str, float]
) -> list[list[str]]:
    """Table rows: median tokens/s, median per-repeat ratios to the baseline, step times.

    The tokens/s ratio is what a user gets (periodic work such as plots included); the median-step
    ratio ignores rare slow steps, so it isolates per-step overhead and shrugs off noise spikes.
    """
    base = results[reference_of(results)]
    rows = []
    for name, runs in results.items():
        steps_ms = [1000 * s for m in runs for s in m.step_seconds]
        speeds = [m.tokens_per_second for m in runs]
        ratio = statistics.median(m.tokens_per_second / b.tokens_per_second for m, b in zip(runs, base))
        step_ratio = statistics.median(b.median_step / m.median_step for m, b in zip(runs, base))
        typical = f"{statistics.median(steps_ms):.1f} / {max(steps_ms):.0f}"
        speed_text = f"{statistics.median(speeds):,.0f}|{' '.join(f'{v:,.0f}' for v in speeds)}"
        precision = precision_of(name)
        use = mfu(statistics.median(speeds), n_params, "lora", peaks[precision])
        memory = f"{max(m.peak_mib for m in runs):,.0f}"
        rows.append(
            [
                name,
                *speed_text.split("|"),
                f"{ratio:.3f}",
                f"{step_ratio:.3f}",
                typical,
                f"{100 * use:.1f}% of {precision}",
                memory,
            ]
        )
    return rows


RESULT_COLUMNS = (
    "variant|tokens/s (median)|each repeat|tokens/s vs baseline|median step vs baseline|step ms median / max"
    "|MFU (4N FLOPs/token)|peak RSS growth MiB"
).split("|")


def print_table(title: str, columns: Sequence[str], rows: list[list[str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    # emoji=False: "tiny:llama:" is an emoji code; a fixed width keeps piped output readable
    Console(emoji=False, highlight=False, width=150).print(table)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--model", default="tiny:llama", choices=sorted(PRESETS))
    parser.add_argument("--steps", type=int, help="measured steps per run, after the warm-up")
    parser.add_argument("--warmup", type=int, help="warm-up steps excluded from the window (>= 1)")
    parser.add_argument("--repeats", type=int, help="runs per variant (medians are reported)")
    parser.add_argument("--batch", type=int, help="per_device_train_batch_size")
    parser.add_argument("--cutoff", type=int, help="cutoff_len")
    parser.add_argument("--dataset", help="a builtin dataset, e.g. instruct_en or identity_en")
    parser.add_argument("--logging-steps", type=int, help="logging_steps of every variant")
    parser.add_argument("--variants", default="baseline,tunelab,trl", help=f"from {','.join(ALL_VARIANTS)}")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own choice)")
    parser.add_argument("--profile", action="store_true", help="add a cProfile pass of baseline and tunelab")
    parser.add_argument(
        "--no-docs",
        action="store_true",
        help="print the markdown section instead of writing it into docs/benchmarks.md",
    )
    parser.add_argument("--lf-python", help="python of a venv with LLaMA-Factory installed: adds variant lf")
    args = parser.parse_args(argv)
    for key, value in zip(PRESET_KEYS, PRESETS[args.model]):
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.packed = args.model in PACKED_PRESETS
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if args.lf_python and "lf" not in args.variants:
        args.variants.append("lf")
    if "lf" in args.variants and not args.lf_python:
        args.variants.remove("lf")  # skipped: no LLaMA-Factory interpreter given
    unknown = [v for v in args.variants if v not in ALL_VARIANTS and not v.startswith("tunelab+")]
    if unknown or not {"baseline", "baseline-bf16"} & set(args.variants):
        parser.error(
            f"--variants must include baseline (or baseline-bf16, then the reference) and take {', '.join(ALL_VARIANTS)} or tunelab+key=value"
        )
    if args.warmup < 1 or args.steps < 1 or args.repeats < 1:
        parser.error("--warmup, --steps and --repeats must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from tunelab.quiet import quiet_libraries

    quiet_libraries()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    command = " ".join(["python benchmarks/train_throughput.py", *(sys.argv[1:] if argv is None else argv)])
    started = time.strftime("%Y-%m-%d %H:%M %Z")
    with tempfile.TemporaryDirectory(prefix="tunelab-bench-") as tmp:
        setup = prepare(args, Path(tmp))
        print("\n".join(setup.notes), flush=True)
        results = run_all(args, setup, Path(tmp))
    peaks = {p: measured_peak(p) for p in sorted({precision_of(name) for name in results})}
    setup.notes.append(
        "matmul peak (1024^3, best burst of 1 s, same threads): "
        + ", ".join(f"{p} {v / 1e9:,.0f} GFLOP/s" for p, v in peaks.items())
        + f"; model parameters N = {setup.n_params:,}"
    )
    rows = summarise(results, setup.n_params, peaks)
    if reference_of(results) != "baseline":
        setup.notes.append(f"ratios (the vs baseline columns) are against {reference_of(results)}")
    print_table(
        f"training throughput, {args.model}: {args.steps} measured steps after {args.warmup} warm-up, "
        f"batch {args.batch}, cutoff {args.cutoff}, median of {args.repeats}",
        RESULT_COLUMNS,
        rows,
    )
    lines = [
        f"### {args.model}: batch {args.batch}, cutoff {args.cutoff}, {args.dataset}",
        "",
        f"- date: {started}",
        f"- command: `{command}`",
        *machine_lines(("torch", "transformers", "peft", "trl", "accelerate"), date=False),
        f"- schedule: {args.warmup} warm-up + {args.steps} measured steps per run, logging_steps "
        f"{args.logging_steps}, no checkpoint in the window; {args.repeats} repeats, order alternating",
        *(f"- {note}" for note in setup.notes),
        "",
        *markdown_table(RESULT_COLUMNS, rows),
    ]
    if args.no_docs:
        print("\n".join(lines))
    else:
        update_docs(f"train_throughput {args.model}", "\n".join(lines) + "\n")
        print(f"updated {DOCS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
