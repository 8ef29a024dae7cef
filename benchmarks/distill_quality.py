"""What knowledge distillation buys: a 15-layer SmolLM2 student trained by plain sft vs by stage kd.

1. Teacher: SmolLM2-135M-Instruct (`smollm2`) fine-tuned with LoRA on the bundled instruct_en task
   (an ordinary `tunelab train` run directory, used as the teacher with its adapter applied).
2. Student: `tunelab data init-student` with every_other_layer from the *base* SmolLM2 (15 of 30
   layers), full fine-tuning.
3. The teacher's top-k log-probs are stored once (`tunelab data teacher-logits`), so kd runs cost
   about what sft runs cost; that one teacher pass is counted in kd's time.
4. Same data, steps and learning-rate grid for (a) sft of the student and (b) kd of the student; the
   best learning rate of each (lowest held-out CE) is reported.

Every model is scored the same way on the same held-out split (20% of instruct_en, never trained on):
cross-entropy / perplexity of the reference responses, and top-1 agreement with the teacher (share of
response tokens where the model's most likely next token is the teacher's).

    python benchmarks/distill_quality.py            # ~10-15 minutes on a quiet 2-core machine
    python benchmarks/distill_quality.py --quick    # 12 teacher / 10 student steps, 2 learning rates
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _tune_docs import machine_lines, markdown_table, print_table, update_docs  # noqa: E402

COMMON = {
    "dataset": "instruct_en",
    "dataset_dir": "builtin",
    "template": "chatml",
    "cutoff_len": 128,
    "val_size": 0.2,
    "per_device_train_batch_size": 8,
    "lr_scheduler_type": "cosine",
    "warmup_ratio": 0.1,
    "compute_type": "fp32",
    "logging_steps": 5,
    "save_steps": 10_000,
    "disable_tqdm": True,
    "plot_loss": False,
    "health": {"enabled": False},
    "seed": 42,
}


def _train(values: dict[str, Any]) -> tuple[Any, float]:
    from tunelab.config import config_from_dict
    from tunelab.train import train

    start = time.perf_counter()
    result = train(config_from_dict({**COMMON, **values}))
    return result, time.perf_counter() - start


def score(
    model_dir: Path, adapter: Path | None, cache_dir: Path, config_values: dict[str, Any]
) -> dict[str, float]:
    """Held-out CE, perplexity and top-1 agreement with the cached teacher of one model."""
    import torch

    from tunelab.config import config_from_dict
    from tunelab.data.collator import build_collator
    from tunelab.data.pipeline import build_datasets
    from tunelab.model import load_adapters, load_model, load_tokenizer
    from tunelab.train.kd_trainer import decoder_states
    from tunelab.train.teacher_cache import TeacherCache

    config = config_from_dict({**COMMON, **config_values, "model_name_or_path": str(model_dir)})
    tokenizer = load_tokenizer(config.model)
    _, eval_set, _ = build_datasets(config, tokenizer)
    model = load_model(config.model, compute_dtype=torch.float32)
    if adapter is not None:
        model = load_adapters(model, [str(adapter)], is_trainable=False).merge_and_unload()
    model.eval()
    cache = TeacherCache.open(cache_dir)
    cache.check_data({"eval": eval_set})
    collate = build_collator(tokenizer, packing=False)
    nll = agree = n = 0.0
    with torch.inference_mode():
        for start in range(0, len(eval_set), 8):
            rows = list(range(start, min(start + 8, len(eval_set))))
            batch = collate([eval_set[i] for i in rows])
            targets = batch["labels"][:, 1:]
            mask = targets != -100
            logits = model.get_output_embeddings()(decoder_states(model, batch)[:, :-1][mask]).float()
            _, ids, _ = cache.batch("eval", rows)
            nll += float(torch.nn.functional.cross_entropy(logits, targets[mask], reduction="sum"))
            agree += float((logits.argmax(-1) == ids[:, 0]).sum())
            n += int(mask.sum())
    return {"ce": nll / n, "ppl": math.exp(nll / n), "agree": agree / n}


def teacher_score(cache_dir: Path) -> dict[str, float]:
    from tunelab.train.teacher_cache import TeacherCache

    cache = TeacherCache.open(cache_dir)
    n = cache.manifest["splits"]["eval"]["n_samples"]
    _, _, label_lp = cache.batch("eval", list(range(n)))
    ce = -float(label_lp.mean())
    return {"ce": ce, "ppl": math.exp(ce), "agree": 1.0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="12 teacher and 10 student steps, 2 learning rates (for a loaded machine)",
    )
    parser.add_argument("--no-docs", action="store_true", help="leave docs/benchmarks.md alone")
    parser.add_argument(
        "--model", default="smollm2", help="base model (tiny:llama checks the script in seconds)"
    )
    parser.add_argument("--teacher", help="reuse this finished teacher run directory instead of training one")
    parser.add_argument(
        "--lrs", help="comma-separated learning-rate grid (default: 1e-4,3e-4 quick; 5e-5,1e-4,3e-4)"
    )
    args = parser.parse_args(argv)
    teacher_steps, student_steps = (12, 10) if args.quick else (60, 40)
    grid = [1e-4, 3e-4] if args.quick else [5e-5, 1e-4, 3e-4]
    if args.lrs:
        grid = [float(x) for x in args.lrs.split(",")]
    kd_keys = {"kd_alpha": 0.5, "kd_temperature": 2.0, "kd_loss": "forward_kl"}

    from tunelab.quiet import quiet_libraries

    quiet_libraries()
    from tunelab.config import config_from_dict
    from tunelab.train.student_init import init_student
    from tunelab.train.teacher_cache import write_teacher_cache

    rows, times = [], {}
    with tempfile.TemporaryDirectory(prefix="tunelab-kdq-") as tmp_name:
        tmp = Path(tmp_name)
        if args.teacher:  # a finished teacher run of the same settings (its training time is not counted)
            from tunelab.runs import RunDir

            teacher_dir, times["teacher"] = Path(args.teacher), 0.0
            teacher_steps = RunDir(teacher_dir).read_metrics()["global_step"]
        else:
            teacher, times["teacher"] = _train(
                {
                    "model_name_or_path": args.model,
                    "stage": "sft",
                    "finetuning_type": "lora",
                    "lora_rank": 16,
                    "learning_rate": 1e-3,
                    "max_steps": teacher_steps,
                    "output_dir": str(tmp / "teacher"),
                }
            )
            teacher_dir = teacher.run_dir
        start = time.perf_counter()
        student_dir = init_student(
            config_from_dict(
                {**COMMON, "model_name_or_path": args.model, "teacher_model_name_or_path": args.model}
            ),
            tmp / "student-init",
            spec="every_other_layer",
        )
        times["init"] = time.perf_counter() - start
        student = {
            "model_name_or_path": str(student_dir),
            "finetuning_type": "full",
            "max_steps": student_steps,
        }
        cache_values = {
            **student,
            "stage": "kd",
            "teacher_model_name_or_path": str(teacher_dir),
            "kd_topk": 32,
        }
        start = time.perf_counter()
        cache = write_teacher_cache(config_from_dict({**COMMON, **cache_values}), tmp / "cache")
        times["cache"] = time.perf_counter() - start

        rows.append(["teacher (SmolLM2-135M + LoRA, 30 layers)", "", teacher_score(cache), times["teacher"]])
        rows.append(
            ["student before training (15 layers)", "", score(student_dir, None, cache, student), 0.0]
        )
        for method in ("sft", "kd"):
            best: tuple[dict[str, float], float, float] | None = None
            total = 0.0
            for lr in grid:
                values = {**student, "learning_rate": lr, "output_dir": str(tmp / f"{method}-{lr:g}")}
                if method == "sft":
                    values["stage"] = "sft"
                else:
                    values.update(stage="kd", kd_teacher_cache=str(cache), **kd_keys)
                result, seconds = _train(values)
                total += seconds
                figures = score(result.run_dir, None, cache, student)
                print(f"{method} lr={lr:g}: {figures}  ({seconds:.0f} s)", flush=True)
                if best is None or figures["ce"] < best[0]["ce"]:
                    best = (figures, lr, seconds)
            assert best is not None
            if method == "kd":
                total += times["cache"]
            rows.append([f"student {method}", f"{best[1]:g}", best[0], total])

    columns = ["model", "best lr", "eval CE", "eval perplexity", "top-1 agreement with teacher", "time (s)"]
    table = [
        [
            name,
            lr,
            f"{f['ce']:.3f}",
            f"{f['ppl']:.1f}",
            f"{100 * f['agree']:.1f}%",
            f"{seconds:.0f}" if seconds else "",
        ]
        for name, lr, f, seconds in rows
    ]
    print_table("distillation quality (held-out instruct_en split)", columns, table)
    if not args.no_docs and args.model == "smollm2":
        command = "python benchmarks/distill_quality.py" + (" --quick" if args.quick else "")
        command += f" --lrs {args.lrs}" if args.lrs else ""
        command += " --teacher <the teacher run of an earlier invocation>" if args.teacher else ""
        section = "\n".join(
            [
                "### Knowledge distillation: 15-layer SmolLM2 student, sft vs kd",
                "",
                f"- command: `{command}`",
                *machine_lines(),
                f"- teacher: SmolLM2-135M-Instruct + LoRA r=16, lr 1e-3, {teacher_steps} steps on instruct_en "
                "(80% split), batch 8, cutoff 128, fp32",
                f"- student: every_other_layer of the base SmolLM2 (15 layers), full fine-tuning, {student_steps} "
                f"steps, learning rates {', '.join(f'{lr:g}' for lr in grid)} (best by held-out CE); kd: "
                "forward KL, T=2, alpha=0.5, teacher top-32 from a teacher-logits cache",
                f"- time: kd includes the teacher cache pass ({times['cache']:.0f} s); student init "
                f"{times['init']:.0f} s is shared by both",
                "- every row is scored by the same code on the same held-out 20% (30 records, never trained on)",
                "",
                *markdown_table(columns, table),
                "",
            ]
        )
        update_docs("distill_quality", section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
