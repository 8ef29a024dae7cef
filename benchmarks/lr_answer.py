"""Is the one learning-rate answer at least as good as either of its sources alone?

For each task of benchmarks/hparam_quality.py: `tunelab advise --measure` on the task's config gives
the recipe's learning rate, the range test's suggestion (run on the advised config, so at the same
effective batch) and the combined answer (tune/lr_answer.py). Then the advised config is trained
three times, changing only the learning rate: recipe, lr-find, answer. Same data split, seed, steps
(early stopping off, so every arm gets the same training budget) and evaluation cadence; the figure
is the held-out eval loss at the end of training. An arm whose learning rate equals another's is
not trained twice.

    python benchmarks/lr_answer.py --quick        # the two tiny tasks, 1 seed (~10 min on 2 busy cores)
    python benchmarks/lr_answer.py                # + SmolLM2-135M LoRA and MiniLM cls, 2 seeds (an hour+)
    python benchmarks/lr_answer.py --tasks tiny-instruct --seeds 3
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _tune_docs import machine_lines, markdown_table, print_table, update_docs  # noqa: E402
from hparam_quality import _RUN, DEFAULT_TASKS, TASKS  # noqa: E402

ARMS = ("recipe", "lr-find", "answer")


def final_eval_loss(config: Any, out: Path) -> float:
    """Train ``config`` into ``out``; the eval loss at the end (inf when there is none)."""
    from tunelab.train import train

    config = config.model_copy(update={"output": config.output.model_copy(update={"output_dir": str(out)})})
    loss = train(config).metrics.get("eval_loss")
    return float(loss) if isinstance(loss, (int, float)) and math.isfinite(loss) else math.inf


def run_task(key: str, spec: dict[str, Any], scratch: Path, seeds: list[int], steps: int) -> dict[str, Any]:
    from tunelab.config import config_from_dict, load_config
    from tunelab.tune.advise import advise, apply_updates

    base = load_config(None, [*spec["items"], *_RUN])
    start = time.time()
    advice = advise(base, task=spec["task"], measure=True, measure_steps=steps, lr_dir=scratch / f"{key}-lrf")
    answer = advice.lr
    assert answer is not None and answer.lr_find is not None
    lrs = {"recipe": answer.recipe.value, "lr-find": answer.lr_find.value, "answer": answer.value}
    print(f"  {key}: recipe {lrs['recipe']:.2g}, lr-find {lrs['lr-find']:.2g}, answer {answer.value:.2g} "
          f"({answer.source}) in {time.time() - start:.0f} s", flush=True)  # fmt: skip
    advised = apply_updates(base, advice.updates())  # every arm: no early stop, the last weights evaluated
    losses: dict[str, list[float]] = {}
    for seed in seeds:
        done: dict[float, float] = {}
        for arm in ARMS:
            lr = lrs[arm]
            if lr not in done:
                start = time.time()
                flat = advised.to_flat()
                flat.update(learning_rate=lr, seed=seed, load_best_model_at_end=False)
                flat["early_stopping"] = {**flat.get("early_stopping", {}), "enabled": False}
                config = config_from_dict(flat, source="benchmark")
                done[lr] = final_eval_loss(config, scratch / f"{key}-{arm}-{seed}")
                print(f"  {key} seed {seed}: {arm} lr {lr:.2g} -> eval loss {done[lr]:.4f} "
                      f"({time.time() - start:.0f} s)", flush=True)  # fmt: skip
            losses.setdefault(arm, []).append(done[lr])
    return {"title": spec["title"], "seeds": seeds, "lrs": lrs, "source": answer.source, "losses": losses}


def _read_results(path: Path | None, steps: int) -> dict[tuple[str, tuple[int, ...]], dict[str, Any]]:
    """Tasks finished by an earlier invocation with the same range-test steps, by (task, seeds)."""
    if path is None or not path.is_file():
        return {}
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return {(r["task"], tuple(r["seeds"])): r for r in rows if r["steps"] == steps}


def _task_seeds(text: str | None, names: list[str]) -> dict[str, int]:
    """``task=N,...`` -> {task: N}: tasks whose final eval loss is noisier get more seeds."""
    out: dict[str, int] = {}
    for item in filter(None, (text or "").split(",")):
        name, _, count = item.partition("=")
        if name not in names or not count.isdigit() or int(count) < 1:
            raise SystemExit(
                f"--task-seeds: {item!r} is not TASK=N for a task of --tasks ({', '.join(names)})"
            )
        out[name] = int(count)
    return out


def paired_gap(answer: list[float], source: list[float]) -> tuple[float, float]:
    """(mean of answer - source over seeds, 2 standard errors of that mean; 0 with one seed).

    Paired by seed: both arms saw the same data order and initialisation, so what is left of their
    difference is the learning rate's, and its spread over seeds says how much of it is noise."""
    gaps = [a - b for a, b in zip(answer, source)]
    mean = statistics.fmean(gaps)
    noise = 2 * statistics.stdev(gaps) / math.sqrt(len(gaps)) if len(gaps) > 1 else 0.0
    return mean, noise


def _means(r: dict[str, Any]) -> dict[str, float]:
    """Each arm's eval loss of one task, averaged over seeds."""
    return {arm: statistics.fmean(r["losses"][arm]) for arm in ARMS}


def _row(r: dict[str, Any]) -> list[str]:
    mean = _means(r)
    better = min(("recipe", "lr-find"), key=lambda arm: mean[arm])
    gap, noise = paired_gap(r["losses"]["answer"], r["losses"][better])
    cells = [f"{r['lrs'][arm]:.2g} -> {mean[arm]:.4f}" for arm in ARMS]
    cells[2] = f"{cells[2]} ({r['source']})"
    if gap <= 1e-9:
        verdict = "yes"
    elif gap <= noise:
        verdict = "yes, within seed noise"
    else:
        verdict = "no"
    title = f"{r['title']} ({len(r['seeds'])} seeds)"
    return [title, *cells, f"{gap:+.4f} ({noise:.4f}) vs {better}", verdict]


def _policy_row(results: list[dict[str, Any]]) -> list[str]:
    """Each arm as a policy over all tasks: mean relative excess over the best arm of each task."""
    excess: dict[str, list[float]] = {arm: [] for arm in ARMS}
    for r in results:
        mean = _means(r)
        best = min(mean.values())
        for arm in ARMS:
            excess[arm].append((mean[arm] - best) / best)
    cells = [f"+{100 * statistics.fmean(excess[arm]):.2f}%" for arm in ARMS]
    ranked = sorted(ARMS, key=lambda arm: statistics.fmean(excess[arm]))
    return ["all tasks: mean excess over each task's best arm", *cells, "", f"best policy: {ranked[0]}"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="the two tiny tasks, one seed")
    parser.add_argument("--tasks", help=f"comma-separated, from: {', '.join(TASKS)}")
    parser.add_argument("--seeds", type=int, help="seeds per arm (default 1 with --quick, else 2)")
    parser.add_argument(
        "--task-seeds", help="per-task seed counts overriding --seeds, e.g. minilm-sentiment=8"
    )
    parser.add_argument("--steps", type=int, default=100, help="range-test steps (default 100)")
    parser.add_argument("--no-docs", action="store_true", help="leave docs/benchmarks.md alone")
    parser.add_argument(
        "--results",
        type=Path,
        help="JSON lines file: each finished task is appended; a task already there with the same seeds "
        "and steps is read back instead of re-run (split a long run over several invocations)",
    )
    args = parser.parse_args(argv)
    names = args.tasks.split(",") if args.tasks else list(DEFAULT_TASKS if args.quick else TASKS)
    unknown = [n for n in names if n not in TASKS]
    if unknown:
        parser.error(f"unknown task(s) {unknown}; choose from {list(TASKS)}")
    default_seeds = args.seeds or (1 if args.quick else 2)
    counts = _task_seeds(args.task_seeds, names)
    from tunelab.quiet import quiet_libraries

    quiet_libraries()
    results = []
    done = _read_results(args.results, args.steps)
    with tempfile.TemporaryDirectory(prefix="tunelab-lra-") as tmp:
        for name in names:
            seeds = [42 + i for i in range(counts.get(name, default_seeds))]
            if (name, tuple(seeds)) in done:
                print(f"  {name}: read back from {args.results}", flush=True)
                results.append(done[name, tuple(seeds)])
                continue
            result = run_task(name, TASKS[name], Path(tmp), seeds, args.steps)
            results.append(result)
            if args.results is not None:
                with args.results.open("a", encoding="utf-8") as f:
                    f.write(json.dumps({"task": name, "steps": args.steps, **result}) + "\n")
    columns = ["task", "recipe", "lr-find", "answer (source)", "answer - better source (2 SE)", "as good?"]
    rows = [_row(r) for r in results]
    rows.append(_policy_row(results))
    print_table(
        "held-out eval loss after the same budget (learning rate -> loss; lower is better)", columns, rows
    )
    if not args.no_docs:
        command = "python benchmarks/lr_answer.py " + " ".join(argv if argv is not None else sys.argv[1:])
        section = "\n".join(
            [
                "### One learning-rate answer: recipe vs lr-find vs the combined answer",
                "",
                f"- command: `{command.strip()}`",
                *machine_lines(),
                "- other jobs may have shared the 2 cores; the losses do not depend on speed",
                f"- per task: `tunelab advise --measure` ({args.steps}-step range test on the advised config), then "
                "the advised config trained with each learning rate (early stopping off, the same steps for every arm), "
                "final eval loss on the held-out split, mean over the seeds the task row names",
                "- 'answer - better source': the answer's loss minus the better source's, paired by seed, with 2 "
                "standard errors of that mean in brackets; 'as good' when the gap is <= 0 or within those 2 SE",
                "- last row: each arm used as a policy on every task, its loss above the best of the three "
                "arms on that task, averaged over tasks",
                "- answer sources (tune/lr_answer.py): recipe+lr-find = precision-weighted in log space (full or "
                "freeze fine-tuning of pretrained weights, always; new weights on 1B+ models when the two agree); "
                "lr-find = new weights (LoRA, a tiny: random model) below 1B, or on 1B+ a disagreement beyond 2 "
                "standard deviations; an answer equal to a source's learning rate is that source's run, not "
                "trained again",
                "",
                *markdown_table(columns, rows),
                "",
            ]
        )
        update_docs("lr_answer", section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
