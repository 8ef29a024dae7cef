"""The model card (README.md) written beside the final weights of a run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunelab.config.schema import ADAPTER_TYPES
from tunelab.runs.rundir import atomic_write_text

__all__ = ["render_card", "write_model_card"]

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


def render_card(
    *, library_name: str, base_model: str, tags: list[str], datasets: list[str], body: list[str]
) -> str:
    """A README.md whose YAML front matter huggingface_hub writes (so any path or name round-trips).

    Built by string concatenation before, a base model or dataset path containing ": " made the
    metadata unparsable; ``ModelCard.load(path).data`` reads this back.
    """
    from huggingface_hub import ModelCard, ModelCardData  # lazy: runs/ stays light to import

    data = ModelCardData(
        library_name=library_name,
        base_model=base_model or None,
        datasets=datasets or None,
        tags=[t for t in tags if t],
    )
    return str(ModelCard("---\n" + data.to_yaml() + "\n---\n\n" + "\n".join(body)))


def write_model_card(run_dir: Path, info: dict[str, Any], metrics: dict[str, Any]) -> Path:
    """Write README.md: what was trained from what, on which data, with which settings and results.

    ``info`` carries base_model, stage, finetuning_type, datasets, template, trainable/total params
    and the key hyperparameters; the full config is config.yaml next to it.
    """
    lines = [
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
    method = str(info.get("finetuning_type", ""))
    text = render_card(
        library_name="peft" if method in ADAPTER_TYPES else "transformers",
        base_model=str(info.get("base_model", "")),
        tags=["tunelab", str(info.get("stage", "")), method],
        datasets=[d for d in str(info.get("datasets") or "").split(",") if d],
        body=lines,
    )
    atomic_write_text(path, text)
    return path
