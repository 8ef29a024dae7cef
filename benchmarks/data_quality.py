"""How well do `tunelab data check` / `clean` find planted problems, and what does cleaning or selecting buy?

Part ``pr``: LLaMA-Factory's demo data (alpaca_en_demo, alpaca_zh_demo from ../shared/data) plus
tunelab's instruct_en is first cleaned (so the ground truth is known), then problems are planted
with a fixed seed: exact copies (case/space changed), near copies (one or two words or characters
edited), conflicting answers (same prompt, another record's answer), and eval records that are
exact or near copies of training records. Reported per kind: precision and recall of the check,
and of what clean removes.

Part ``train``: LoRA runs with the same steps and learning rate on (a) the planted training data,
(b) its cleaned copy, (c) an IFD-selected 30% of the cleaned data, (d) a random 30%; held-out eval
loss on clean records no run trains on.

    python benchmarks/data_quality.py --parts pr                       # seconds
    python benchmarks/data_quality.py --parts train --model smollm2    # SmolLM2-135M (minutes)
    python benchmarks/data_quality.py --parts train --model tiny:llama --steps 10   # smoke run
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _tune_docs import machine_lines, markdown_table, print_table, update_docs  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("exact", "near", "conflicts", "contaminated")


def _config(items: list[str]) -> Any:
    from tunelab.config import load_config

    return load_config(None, items)


def _base_rows(shared: Path, n_en: int, n_zh: int) -> list[dict[str, Any]]:
    """Demo rows with their own duplicates and conflicts removed first, so every finding is attributable."""
    from tunelab.quality.clean import clean_data

    rows = json.loads((shared / "alpaca_en_demo.json").read_text())[:n_en]
    rows += json.loads((shared / "alpaca_zh_demo.json").read_text())[:n_zh]
    builtin = ROOT / "src" / "tunelab" / "resources" / "data" / "instruct_en.json"
    rows += [
        {k: r.get(k, "") for k in ("instruction", "input", "output")} for r in json.loads(builtin.read_text())
    ]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "base.json"
        path.write_text(json.dumps(rows, ensure_ascii=False))
        config = _config(["model_name_or_path=tiny:llama", f"dataset={path}", "template=chatml"])
        clean_data(config, Path(tmp) / "clean", drop=["malformed", "empty", "exact", "near", "conflicts"])
        return json.loads((Path(tmp) / "clean" / "base.json").read_text())


def _edit(text: str, rng: random.Random) -> str:
    """A near copy: one or two words (or CJK characters) deleted, swapped or doubled."""
    cjk = any("\u4e00" <= c <= "\u9fff" for c in text)
    units = list(text) if cjk else text.split()
    for _ in range(rng.choice((1, 2))):
        if len(units) < 4:
            break
        i = rng.randrange(1, len(units) - 1)
        op = rng.choice(("delete", "swap", "double"))
        if op == "delete":
            del units[i]
        elif op == "swap":
            units[i], units[i + 1] = units[i + 1], units[i]
        else:
            units.insert(i, units[i])
    return ("" if cjk else " ").join(units)


def _long_enough(row: dict[str, Any]) -> bool:
    text = f"{row['instruction']} {row['input']} {row['output']}"
    return len(text.split()) >= 40 or sum("\u4e00" <= c <= "\u9fff" for c in text) >= 80


def plant(
    base: list[dict[str, Any]], seed: int, n: int
) -> tuple[list[dict], list[dict], dict[str, set[int]]]:
    """(train rows, eval rows, planted kind -> indices): train = base part + planted copies; eval = held-out + leaks."""
    rng = random.Random(seed)
    rows = list(base)
    rng.shuffle(rows)
    held, train = rows[: 2 * n], rows[2 * n :]
    truth: dict[str, set[int]] = {k: set() for k in KINDS}
    planted: list[tuple[str, dict]] = []
    for _ in range(n):
        r = rng.choice(train)
        planted.append(("exact", {**r, "instruction": "  " + r["instruction"].upper() + " "}))
    long_rows = [r for r in train if _long_enough(r)]
    for _ in range(n):
        r = rng.choice(long_rows)
        planted.append(
            ("near", {**r, "instruction": _edit(r["instruction"], rng), "output": _edit(r["output"], rng)})
        )
    for _ in range(n):
        r, other = rng.sample(train, 2)
        planted.append(("conflicts", {**r, "output": other["output"]}))
    rng.shuffle(planted)
    for kind, row in planted:
        truth[kind].add(len(train))
        train.append(row)
    evals = list(held)
    for i in range(n):
        r = rng.choice(long_rows)
        truth["contaminated"].add(len(evals))
        evals.append(dict(r) if i % 2 == 0 else {**r, "output": _edit(r["output"], rng)})
    return train, evals, truth


def part_pr(args: argparse.Namespace) -> list[str]:
    from tunelab.quality import check_data
    from tunelab.quality.clean import clean_data

    base = _base_rows(args.shared_data, args.n_en, args.n_zh)
    train, evals, truth = plant(base, args.seed, args.n_plant)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "train.json").write_text(json.dumps(train, ensure_ascii=False))
        (d / "eval.json").write_text(json.dumps(evals, ensure_ascii=False))
        items = [
            "model_name_or_path=tiny:llama",
            f"dataset={d / 'train.json'}",
            f"eval_dataset={d / 'eval.json'}",
            "template=chatml",
        ]
        config = _config(items)
        started = time.perf_counter()
        report = check_data(config, near_threshold=args.threshold, tokens=False)
        seconds = time.perf_counter() - started
        result = clean_data(
            config,
            d / "clean",
            drop=["exact", "near", "conflicts", "contaminated"],
            near_threshold=args.threshold,
        )
        removed = [json.loads(x) for x in (d / "clean" / "removed.jsonl").read_text().splitlines()]
    rows, doc = [], []
    planted_train = set().union(*(truth[k] for k in KINDS if k != "contaminated"))
    gone = {r["index"] for r in removed if r["dataset"] != str(d / "eval.json")}
    leaked_originals = {f.other.index for f in report.by_kind("contaminated") if f.other is not None}
    for kind in KINDS:
        flagged = {f.ref.index for f in report.by_kind(kind)}
        pool = truth["contaminated"] if kind == "contaminated" else planted_train
        precision = len(flagged & pool) / len(flagged) if flagged else float("nan")
        recall = len(flagged & truth[kind]) / len(truth[kind])
        if kind == "contaminated":  # clean removes the training copy of each leak found
            clean_recall = len(gone & leaked_originals) / len(truth[kind])
        else:
            clean_recall = len(gone & truth[kind]) / len(truth[kind])
        rows.append(
            [
                kind,
                str(len(truth[kind])),
                str(len(flagged)),
                f"{precision:.2f}",
                f"{recall:.2f}",
                f"{clean_recall:.2f}",
            ]
        )
    cross = {f.ref.index for f in report.by_kind("near")} & truth["conflicts"]
    clean_precision = len(gone & (planted_train | leaked_originals)) / len(gone) if gone else float("nan")
    columns = [
        "planted kind",
        "planted",
        "flagged as this kind",
        "check precision",
        "check recall",
        "clean recall",
    ]
    print_table("data check / clean on planted problems", columns, rows)
    doc += [
        f"Base: {len(base)} records (alpaca_en_demo[:{args.n_en}], alpaca_zh_demo[:{args.n_zh}], instruct_en) after "
        f"removing their own duplicates and conflicts; {args.n_plant} of each kind planted (seed {args.seed}); "
        f"near-duplicate threshold {args.threshold}; check took {seconds:.1f} s for {len(train) + len(evals)} records; "
        f"clean kept {sum(result.kept.values())} records.",
        "",
        *markdown_table(columns, rows),
        "",
        f"Precision counts a flag as right when it points at any planted record (a planted conflict takes another "
        f"record's answer, so {len(cross)} of them are also near copies of that record and are flagged as near); recall "
        f"counts the planted records of that kind flagged as that kind; clean recall, those removed for any reason. "
        f"Of all {len(gone)} training records clean removed, {clean_precision:.0%} were planted (or the training copy "
        "of a planted leak).",
        "",
    ]
    return doc


def _train(items: list[str], out: Path) -> float:
    from tunelab.train import train

    result = train(_config([*items, f"output_dir={out}"]))
    return float(result.metrics["eval_loss"])


def part_train(args: argparse.Namespace) -> list[str]:
    from tunelab.quality.clean import clean_data
    from tunelab.quality.select import select_data

    base = _base_rows(args.shared_data, args.n_en, 0)
    train, evals, _ = plant(base, args.seed, args.n_plant)
    held = evals[: 2 * args.n_plant]  # clean held-out records only: no leaks in the eval of this part
    common = [
        f"model_name_or_path={args.model}", "template=chatml" if args.model.startswith("tiny") else "template=tokenizer",
        "finetuning_type=lora", "lora_rank=8", "lora_target=all", f"cutoff_len={args.cutoff}",
        "per_device_train_batch_size=4", f"max_steps={args.steps}", f"learning_rate={args.lr}",
        "lr_scheduler_type=cosine", "warmup_ratio=0.1", "compute_type=fp32", "seed=42", "report_to=none",
        "logging_steps=5", "save_steps=100000", "plot_loss=false",
    ]  # fmt: skip
    figures: list[list[str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "raw.json").write_text(json.dumps(train, ensure_ascii=False))
        (d / "held.json").write_text(json.dumps(held, ensure_ascii=False))
        evaluation = [f"eval_dataset={d / 'held.json'}", "eval_strategy=steps", f"eval_steps={args.steps}"]
        runs: dict[str, list[str]] = {"raw (planted problems)": [f"dataset={d / 'raw.json'}"]}
        clean_data(
            _config([*common, f"dataset={d / 'raw.json'}"]), d / "clean", drop=["exact", "near", "conflicts"]
        )
        runs["cleaned"] = ["dataset=raw", f"dataset_dir={d / 'clean'}"]
        started = time.perf_counter()
        picked = select_data(
            _config([*common, "dataset=raw", f"dataset_dir={d / 'clean'}"]), d / "ifd", by="ifd", keep=0.3
        )
        scoring = time.perf_counter() - started
        runs["IFD 30% of cleaned"] = ["dataset=raw", f"dataset_dir={d / 'ifd'}"]
        cleaned = json.loads((d / "clean" / "raw.json").read_text())
        random.Random(args.seed).shuffle(cleaned)
        (d / "random.json").write_text(json.dumps(cleaned[: picked.n_kept], ensure_ascii=False))
        runs["random 30% of cleaned"] = [f"dataset={d / 'random.json'}"]
        for name, data_items in runs.items():
            started = time.perf_counter()
            loss = _train([*common, *data_items, *evaluation], d / name.replace(" ", "_"))
            figures.append([name, f"{loss:.4f}", f"{time.perf_counter() - started:.0f}"])
    columns = ["training data", "held-out eval loss", "seconds"]
    print_table(f"{args.model}: {args.steps} steps each", columns, figures)
    return [
        f"{args.model} LoRA r=8, {args.steps} steps of batch 4 at lr {args.lr}, cutoff {args.cutoff}, on alpaca_en_demo[:{args.n_en}] "
        f"+ instruct_en with {args.n_plant} exact, near and conflicting copies planted; eval on {len(held)} clean held-out "
        f"records. IFD scoring of the cleaned data took {scoring:.0f} s.",
        "",
        *markdown_table(columns, figures),
        "",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--parts", default="pr", help="pr, train or pr,train")
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--cutoff", type=int, default=256)
    parser.add_argument("--n-en", type=int, default=600)
    parser.add_argument("--n-zh", type=int, default=300)
    parser.add_argument("--n-plant", type=int, default=30)
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--shared-data", type=Path, default=ROOT.parent / "shared" / "data", help="LLaMA-Factory demo data"
    )
    parser.add_argument("--no-docs", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    command = "python benchmarks/data_quality.py " + " ".join(sys.argv[1:])
    for part in args.parts.split(","):
        lines = part_pr(args) if part == "pr" else part_train(args)
        section = "\n".join(
            [f"### Data quality ({part})", "", f"Command: `{command}`", "", *machine_lines(), "", *lines]
        )
        if not args.no_docs:
            update_docs(f"data-quality-{part}", section + "\n")


if __name__ == "__main__":
    main()
