"""The model card (README.md) written beside the final weights of a run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunelab.config.schema import ADAPTER_TYPES
from tunelab.runs.rundir import atomic_write_text

__all__ = ["write_model_card"]

_SHOWN_METRICS = (
    "train_loss",
    "eval_loss",
    "eval_perplexity",
    "train_runtime",
    "tokens_per_second",
    "global_step",
)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def write_model_card(run_dir: Path, info: dict[str, Any], metrics: dict[str, Any]) -> Path:
    """Write README.md: what was trained from what, on which data, with which settings and results.

    ``info`` carries base_model, stage, finetuning_type, datasets, template, trainable/total params
    and the key hyperparameters; the full config is config.yaml next to it.
    """
    lines = [
        "---",
        "library_name: " + ("peft" if info.get("finetuning_type") in ADAPTER_TYPES else "transformers"),
        f"base_model: {info.get('base_model', '')}",
        "tags: [tunelab, " + str(info.get("stage", "")) + ", " + str(info.get("finetuning_type", "")) + "]",
        "---",
        "",
        f"# {run_dir.name}",
        "",
        f"Fine-tuned with tunelab from `{info.get('base_model', '')}` "
        f"(stage `{info.get('stage')}`, method `{info.get('finetuning_type')}`).",
        "",
        "## Training",
        "",
        "| setting | value |",
        "| --- | --- |",
    ]
    for key, value in info.items():
        if key != "base_model":
            lines.append(f"| {key} | {_fmt(value)} |")
    lines += ["", "## Results", "", "| metric | value |", "| --- | --- |"]
    for key in _SHOWN_METRICS:
        if key in metrics:
            lines.append(f"| {key} | {_fmt(metrics[key])} |")
    lines += [
        "",
        "Curves: `plots/loss.png`, `plots/lr.png`, `plots/grad_norm.png`. Every setting: `config.yaml`.",
        "Decisions taken during training (resume, stops): `events.jsonl`.",
        "",
        "## Use",
        "",
        "```python",
        *(
            [
                "from peft import AutoPeftModelForCausalLM",
                f"model = AutoPeftModelForCausalLM.from_pretrained({str(run_dir)!r})",
            ]
            if info.get("finetuning_type") in ADAPTER_TYPES
            else [
                "from transformers import AutoModelForCausalLM",
                f"model = AutoModelForCausalLM.from_pretrained({str(run_dir)!r})",
            ]
        ),
        "```",
        "",
    ]
    path = run_dir / "README.md"
    atomic_write_text(path, "\n".join(lines))
    return path
