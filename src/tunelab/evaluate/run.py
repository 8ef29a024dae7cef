"""`evaluate(...)`: everything `tunelab eval` measures for one model, or two side by side.

The short story: resolve which model (config / --model / run directory), load it once into a
ChatEngine, then measure what the config asks for — loss and perplexity on the eval split, generated
answers with BLEU/ROUGE (predict_with_generate), a multiple-choice benchmark (task), classification
metrics (stage cls) — and write metrics.json with the files behind each figure into the output
directory. With `compare=`, the same measurements run for a reference model (the base model, another
run or model) and the two are put side by side with deltas: the "before vs after".
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunelab.config import RunConfig, dump_config
from tunelab.errors import ConfigError
from tunelab.evaluate.report import compare_metrics
from tunelab.runs.rundir import RunDir, atomic_write_text

if TYPE_CHECKING:
    from tunelab.infer.engine import ChatEngine

__all__ = ["EvalResult", "evaluate", "evaluate_config", "load_eval_records"]

PREDICTIONS_FILE = "generated_predictions.jsonl"
MC_FILE = "mc_predictions.jsonl"


@dataclass
class EvalResult:
    """Metrics of one evaluated model, where its files went, and (compare mode) the reference's result."""

    label: str
    output_dir: Path
    metrics: dict[str, Any]
    files: list[Path] = field(default_factory=list)
    reference: EvalResult | None = None

    def deltas(self) -> dict[str, float]:
        """This model's metric minus the reference's, for every numeric metric both have."""
        if self.reference is None:
            return {}
        return {
            row.key: row.delta
            for row in compare_metrics(self.reference.metrics, self.metrics)
            if row.delta is not None
        }


def evaluate(
    config: str | Path | RunConfig | None = None,
    overrides: Sequence[str] = (),
    *,
    model: str | None = None,
    adapter: str | Sequence[str] | None = None,
    run: str | Path | None = None,
    template: str | None = None,
    compare: str | None = None,
    output_dir: str | Path | None = None,
    console: Any = None,
) -> EvalResult:
    """Evaluate a model (config file, run directory, or `model=` [+ `adapter=`]); see the module docstring.

    `compare`: "base" (the model before this run's / adapter's training), a run directory, a YAML
    config or a model directory. The reference is measured on the same data with the same settings.

        from tunelab import evaluate
        result = evaluate(run="runs/sft-lora-tiny", compare="base", overrides=["predict_with_generate=true"])
        result.metrics["eval_loss"], result.deltas()["eval_loss"]
    """
    from tunelab.infer.source import find_run_dir, is_run_dir, resolve_config

    if config is not None and not isinstance(config, RunConfig) and is_run_dir(config):
        run, config = config, None
    primary = resolve_config(config, overrides, model=model, adapter=adapter, run=run, template=template)
    run_dir = find_run_dir(run) if run is not None and is_run_dir(run) else None
    out = _output_dir(primary, run_dir, output_dir)
    label = _label(primary, run_dir)
    if compare is None:
        return evaluate_config(primary, out, label=label, console=console)

    reference_config, reference_label = reference_for(primary, compare, run_dir)
    if reference_label == label:
        reference_label, label = f"{reference_label} (reference)", f"{label} (evaluated)"
    _say(console, f"[bold]reference[/]: {reference_label}")
    reference = evaluate_config(reference_config, out / "reference", label=reference_label, console=console)
    _say(console, f"[bold]evaluated[/]: {label}")
    result = evaluate_config(primary, out / "candidate", label=label, console=console)
    result.reference = reference
    summary = {
        "reference": {"label": reference.label, "metrics": reference.metrics},
        "candidate": {"label": result.label, "metrics": result.metrics},
        "delta": result.deltas(),
    }
    path = out / "comparison.json"
    atomic_write_text(path, json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    from tunelab.evaluate.plots import plot_comparison

    figure = plot_comparison(reference, result, out / "comparison.png")
    result.files += [path] + ([figure] if figure else [])
    return result


def evaluate_config(
    config: RunConfig, output_dir: Path, *, label: str = "model", console: Any = None
) -> EvalResult:
    """Measure one model as `config` says and write metrics.json (+ predictions, plots) into `output_dir`."""
    from tunelab.infer.engine import load_engine

    records, split = load_eval_records(config)
    wants = _what_to_measure(config, records)
    _say(console, f"loading {label} ...")
    if config.finetuning.stage == "cls":
        from tunelab.evaluate.classify_eval import evaluate_classifier

        metrics, files = evaluate_classifier(config, records, split, output_dir)
        return _finish(config, output_dir, label, metrics, files)

    engine = load_engine(config, name=label)
    batch = config.training.per_device_eval_batch_size
    metrics: dict[str, Any] = {"eval_split": split} if records is not None else {}
    files: list[Path] = []
    started = time.perf_counter()
    if "loss" in wants:
        metrics |= _measure_loss(engine, config, records, split, batch, console)
    if "predict" in wants:
        from tunelab.evaluate.predict import predict_records, write_predictions

        _say(console, f"generating answers for {len(records)} {split} records ...")
        rows = predict_records(
            engine, list(records), batch_size=batch, progress=_progress(console, len(records))
        )
        path = output_dir / PREDICTIONS_FILE
        metrics |= write_predictions(path, rows)
        files.append(path)
    if "task" in wants:
        metrics |= _measure_benchmark(engine, config, output_dir, batch, files, console)
    metrics["eval_runtime"] = time.perf_counter() - started
    return _finish(config, output_dir, label, metrics, files)


def _finish(
    config: RunConfig, output_dir: Path, label: str, metrics: dict[str, Any], files: list[Path]
) -> EvalResult:
    run = RunDir(output_dir)
    run.create()
    run.write_metrics({"model": label, **metrics})
    atomic_write_text(output_dir / "eval_config.yaml", dump_config(config))
    return EvalResult(label, output_dir, {"model": label, **metrics}, [run.metrics_path, *files])


def load_eval_records(config: RunConfig) -> tuple[Any, str]:
    """(records, split name) of the split `eval_split` picks, or (None, "") when the config has none."""
    from tunelab.data.loader import load_dataset_records, load_records

    data, stage, seed = config.data, config.finetuning.stage, config.training.seed
    wanted = config.eval.eval_split
    if not data.dataset:
        if not data.eval_dataset:
            return None, ""
        if wanted == "test":
            raise ConfigError(
                "eval_split=test needs dataset + test_size", "set test_size, or eval_split=eval"
            )
        from datasets import concatenate_datasets

        load = {
            "dataset_dir": data.dataset_dir,
            "stage": stage,
            "max_samples": data.max_samples,
            "seed": seed,
        }
        return concatenate_datasets([load_dataset_records(n, **load) for n in data.eval_dataset]), "eval"
    splits = load_records(data, stage, seed=seed)
    if wanted == "test" and splits.test is None:
        raise ConfigError(
            "eval_split=test but the config holds out no test split",
            "set test_size (e.g. 0.1) or eval_split=eval",
        )
    if wanted == "test" or (wanted == "auto" and splits.test is not None):
        return splits.test, "test"
    return splits.eval, "eval"


def _what_to_measure(config: RunConfig, records: Any) -> set[str]:
    wants: set[str] = set()
    stage = config.finetuning.stage
    if records is not None and len(records) and stage in ("pt", "sft"):
        wants.add("loss")
    if config.eval.predict_with_generate:
        if records is None:
            raise ConfigError(
                "predict_with_generate=true but there is no eval split to generate for",
                "set eval_dataset=<name> (scored whole), or dataset + val_size",
            )
        wants.add("predict")
    if config.eval.task:
        wants.add("task")
    if stage == "cls" and records is not None:
        wants.add("cls")
    if not wants:
        raise ConfigError(
            "nothing to evaluate: the config has no eval split and no benchmark task",
            "set eval_dataset=<name> or val_size (loss, predictions), and/or task=tunelab_mc (multiple choice)",
        )
    return wants


def _measure_loss(
    engine: ChatEngine, config: RunConfig, records: Any, split: str, batch: int, console: Any
) -> dict[str, Any]:
    from tunelab.data.collator import build_collator
    from tunelab.data.tokenize import tokenize_dataset_with_report
    from tunelab.evaluate.loss import evaluate_loss

    data = config.data
    tokenized, _ = tokenize_dataset_with_report(
        records,
        engine.tokenizer,
        engine.template,
        stage=config.finetuning.stage,
        cutoff_len=data.cutoff_len,
        train_on_prompt=data.train_on_prompt,
        mask_history=data.mask_history,
        num_proc=data.preprocessing_num_workers,
    )
    _say(console, f"loss on {len(tokenized)} {split} sequences ...")
    loss = evaluate_loss(
        engine.model, tokenized, build_collator(engine.tokenizer, packing=False), batch_size=batch
    )
    return {
        f"{split}_loss": loss["loss"],
        f"{split}_perplexity": loss["perplexity"],
        f"{split}_tokens": loss["tokens"],
    }


def _measure_benchmark(
    engine: ChatEngine, config: RunConfig, output_dir: Path, batch: int, files: list[Path], console: Any
) -> dict[str, Any]:
    from tunelab.evaluate.benchmark import evaluate_benchmark, load_benchmark, split_benchmark
    from tunelab.evaluate.plots import plot_benchmark

    ev = config.eval
    questions = load_benchmark(ev.task or "", ev.task_dir)
    n_scored = len(split_benchmark(questions)[0])
    _say(console, f"benchmark {ev.task}: {n_scored} questions, {ev.n_shot}-shot ...")
    result = evaluate_benchmark(
        engine,
        questions,
        n_shot=ev.n_shot,
        lang=ev.lang,
        batch_size=batch,
        progress=_progress(console, n_scored, "scoring"),
    )
    path = output_dir / MC_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in result.rows), encoding="utf-8")
    figure = plot_benchmark(
        {engine.name: result.metrics()}, output_dir / "mc_accuracy.png", title=f"{ev.task}, {ev.n_shot}-shot"
    )
    files += [path, figure]
    return result.metrics()


def reference_for(primary: RunConfig, compare: str, run_dir: Path | None) -> tuple[RunConfig, str]:
    """The config of the reference model named by `compare`, measured with `primary`'s settings."""
    from tunelab.config import load_config
    from tunelab.infer.source import find_run_dir, is_run_dir, run_config

    if compare == "base":
        if run_dir is not None:
            # the run's own config.yaml loads exactly what training started from
            before = load_config(run_dir / "config.yaml")
            label = f"base ({_model_label(before)})"
        elif primary.model.adapter_name_or_path:
            before = primary.model_copy(
                update={"model": primary.model.model_copy(update={"adapter_name_or_path": None})}
            )
            label = f"base ({primary.model.model_name_or_path})"
        else:
            raise ConfigError(
                "compare=base needs a fine-tuned model: a run directory or an adapter",
                "evaluate a run (tunelab eval runs/<name> --compare base) or pass --adapter, "
                "or compare against another model: --compare DIR",
            )
        return _with_settings(primary, before), label
    path = Path(compare)
    if is_run_dir(path):
        run = find_run_dir(path)
        label = run.name if run == path else f"{run.name}/{path.name}"
        return _with_settings(primary, run_config(path)), label
    if path.is_file() and path.suffix in (".yaml", ".yml"):
        other = load_config(path)
        return _with_settings(primary, other), _model_label(other)
    model = primary.model.model_copy(update={"model_name_or_path": compare, "adapter_name_or_path": None})
    return primary.model_copy(update={"model": model}), compare


def _with_settings(primary: RunConfig, other: RunConfig) -> RunConfig:
    """`other`'s model (and its chat template) with everything else — data, eval, generation — from `primary`."""
    data = primary.data.model_copy(
        update={"template": other.data.template, "default_system": other.data.default_system}
    )
    return primary.model_copy(update={"model": other.model, "data": data})


def _model_label(config: RunConfig) -> str:
    adapters = config.model.adapter_name_or_path or []
    return config.model.model_name_or_path + (f" + {adapters[-1]}" if adapters else "")


def _label(config: RunConfig, run_dir: Path | None) -> str:
    return run_dir.name if run_dir is not None else _model_label(config)


def _output_dir(config: RunConfig, run_dir: Path | None, requested: str | Path | None) -> Path:
    if requested is not None:
        return Path(requested)
    if config.eval.save_dir:
        return Path(config.eval.save_dir)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return (run_dir or Path("runs")) / f"eval-{stamp}"


def _say(console: Any, text: str) -> None:
    if console is not None:
        console.print(text)


def _progress(console: Any, total: int, what: str = "generating") -> Any:
    """A callback advancing a progress line by the records done, or None without a console."""
    if console is None or total == 0:
        return None
    from tunelab.evaluate.report import ProgressLine

    return ProgressLine(console, total, what)
