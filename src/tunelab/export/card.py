"""The model card (README.md) of an exported model: where it came from, its files, its verification.

The Hub repo id (export_hub_model_id) is recorded in the card and in export_report.json; `tunelab export`
pushes the folder there (export/hub.py), and the card says how to push it again by hand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunelab.export.hub import upload_command
from tunelab.runs.model_card import render_card
from tunelab.runs.rundir import atomic_write_text

__all__ = ["write_export_card"]


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def write_export_card(export_dir: Path, report: dict[str, Any], training_metrics: dict[str, Any]) -> Path:
    """Write export_dir/README.md from the export report (and the source run's metrics, if any)."""
    source = report["source"]
    hub_id = report.get("hub_model_id")
    title = hub_id or export_dir.name
    tags = ["tunelab", str(source.get("stage", "")), str(source.get("finetuning_type", "")), "merged"]
    lines = [
        f"# {title}",
        "",
        _origin(source),
        "",
        "## Files",
        "",
        "| setting | value |",
        "| --- | --- |",
        f"| dtype | {report['dtype']} |",
        f"| format | {report['format']} |",
        f"| shards | {report['n_shards']} (max {report['export_size_gb']} GB each) |",
        f"| total size | {report['total_bytes'] / 1e6:.1f} MB |",
        f"| chat template | {report['chat_template']} |",
    ]
    if report.get("device"):
        lines.append(f"| exported on | {report['device']} (export_device: {report.get('export_device')}) |")
    if report.get("quantization_bit"):
        method = "GPTQ" if report.get("quantization_method") == "gptq" else "bitsandbytes"
        lines.append(f"| quantization | {method} {report['quantization_bit']}-bit |")
    calibration = report.get("calibration")
    if calibration:
        lines.append(
            f"| calibration | {calibration['n_samples']} sample(s) of `{calibration['dataset']}`, "
            f"at most {calibration['maxlen']} tokens each |"
        )
    verification = report.get("verification")
    lines += ["", "## Verification", ""]
    if verification:
        verdict = "passed" if verification["passed"] else "FAILED"
        lines.append(
            f"Loaded back with plain transformers; logits compared with the source model on "
            f"{verification['n_inputs']} inputs ({verification['n_positions']} positions): {verdict}, "
            f"max |difference| {verification['max_abs_diff']:.3g} (tolerance {verification['tolerance']:.3g}), "
            f"same next token at {100 * verification['argmax_agreement']:.1f}% of positions."
        )
    else:
        lines.append("Not verified (export_verify: false).")
    shown = {
        k: training_metrics[k]
        for k in ("train_loss", "eval_loss", "eval_perplexity")
        if k in training_metrics
    }
    if shown:
        lines += ["", "## Training results", "", "| metric | value |", "| --- | --- |"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in shown.items()]
    lines += [
        "",
        "## Use",
        "",
        "```python",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        f"model = AutoModelForCausalLM.from_pretrained({str(export_dir)!r})",
        f"tokenizer = AutoTokenizer.from_pretrained({str(export_dir)!r})",
        "```",
        "",
    ]
    if hub_id:
        lines += [
            "## Publish",
            "",
            f"`tunelab export` pushes this folder to the Hub repo `{hub_id}` (export_hub_model_id). "
            "To push it again by hand:",
            "",
            "```bash",
            upload_command(hub_id, export_dir),
            "```",
            "",
        ]
    path = export_dir / "README.md"
    text = render_card(
        library_name="transformers", base_model=str(source["base_model"]), tags=tags, datasets=[], body=lines
    )
    atomic_write_text(path, text)
    return path


def _origin(source: dict[str, Any]) -> str:
    adapters = source.get("adapters") or []
    if adapters:
        return (
            f"LoRA adapter(s) {', '.join(f'`{a}`' for a in adapters)} merged into `{source['base_model']}` "
            "by tunelab; the result loads without peft."
        )
    run = source.get("run_dir")
    what = f"run `{run}`" if run else f"`{source['model']}`"
    return f"Exported by tunelab from {what} (base model `{source['base_model']}`)."
