"""The top bar: language, model, finetuning method, adapters from earlier runs, advanced model settings.

Boosters (flash-attn 2, unsloth, liger) are checked lazily, when the page loads, not when the app is
built: detecting CUDA imports torch, which `tunelab webui --help` must not pay for.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import Any

from tunelab.webui.context import UIContext
from tunelab.webui.forms import field_spec
from tunelab.webui.i18n import LANGS, tr

__all__ = [
    "BOOSTERS",
    "MODEL_PRESETS",
    "adapter_choices",
    "apply_boosters",
    "build_topbar",
    "detect_boosters",
]

MODEL_PRESETS = ("smollm2", "tiny:llama", "tiny:qwen2", "minilm")
# booster -> (config key it sets, value, package that provides it)
BOOSTERS: dict[str, tuple[str, Any, str | None]] = {
    "auto": ("flash_attn", "auto", None),
    "fa2": ("flash_attn", "fa2", "flash_attn"),
    "unsloth": ("use_unsloth", True, "unsloth"),
    "liger": ("enable_liger_kernel", True, "liger_kernel"),
}


@functools.lru_cache(maxsize=1)
def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def detect_boosters() -> dict[str, str | None]:
    """Booster -> None when usable here, else the text key of the reason it is not."""
    from tunelab.webui.forms import config_keys

    keys = set(config_keys())
    reasons: dict[str, str | None] = {}
    for name, (key, _, package) in BOOSTERS.items():
        if name == "auto":
            reasons[name] = None
        elif key not in keys:
            reasons[name] = "booster.no_key"
        elif package and importlib.util.find_spec(package) is None:
            reasons[name] = "booster.no_package"
        elif not _cuda_available():
            reasons[name] = "booster.no_cuda"
        else:
            reasons[name] = None
    return reasons


def apply_boosters(flat: dict[str, Any], checked: list[Any]) -> None:
    """Set the config keys of the checked booster (the booster checkboxes are mutually exclusive)."""
    for (name, (key, value, _)), on in zip(BOOSTERS.items(), checked):
        if on and name != "auto":
            flat[key] = value


def adapter_choices(runs_dir: str | Path) -> list[str]:
    """Run directories (and their checkpoints) holding a LoRA adapter, newest run first."""
    from tunelab.errors import ConfigError
    from tunelab.runs.listing import list_runs

    try:
        runs = list_runs(runs_dir)
    except ConfigError:  # no runs folder yet
        return []
    found: list[str] = []
    for run in runs:
        if (run.path / "adapter_config.json").is_file():
            found.append(str(run.path))
        found.extend(
            str(p) for p in sorted(run.path.glob("checkpoint-*")) if (p / "adapter_config.json").is_file()
        )
    return found


def build_topbar(ctx: UIContext) -> dict[str, Any]:
    """Build the top bar inside the current Blocks; returns its non-form widgets by name."""
    import gradio as gr

    from tunelab.data.template import template_names

    lang = ctx.default_lang
    widgets: dict[str, Any] = {}
    with gr.Row(elem_id="tl-topbar"):
        ctx.lang = gr.Dropdown(
            choices=[("English", "en"), ("中文", "zh")],
            value=lang if lang in LANGS else "en",
            label="Language / 语言",
            elem_id="tl-lang",
            scale=1,
            min_width=120,
        )
        ctx.field(
            "model_name_or_path",
            choices=list(MODEL_PRESETS),
            value="tiny:llama",
            allow_custom_value=True,
            scale=3,
        )
        ctx.field("finetuning_type", scale=1)
        ctx.field("adapter_name_or_path", multiselect=True, choices=adapter_choices(ctx.runs_dir), scale=3)
        widgets["refresh"] = ctx.translator.value(
            gr.Button(
                tr("btn.refresh", lang), size="sm", scale=0, min_width=90, elem_id="tl-refresh-adapters"
            ),
            "btn.refresh",
        )
    with gr.Accordion(tr("acc.advanced_model", lang), open=False, elem_id="tl-advanced") as acc:
        ctx.translator.label(acc, "acc.advanced_model")
        with gr.Row():
            ctx.field("quantization_bit", choices=field_spec("quantization_bit").choice_labels())
            ctx.field("quantization_method")
            ctx.field("template", choices=template_names())
            ctx.field("rope_scaling")
        with gr.Row():
            boosters = []
            for name in BOOSTERS:
                box = gr.Checkbox(
                    value=name == "auto",
                    label=tr(f"booster.{name}", lang),
                    info=tr("booster.checking", lang),
                    interactive=False,
                    elem_id=f"tl-booster-{name}",
                )
                ctx.translator.label(box, f"booster.{name}")
                boosters.append(box)
            ctx.extra_inputs.extend(boosters)
        widgets["booster_note"] = gr.Markdown("", elem_id="tl-booster-note")
    widgets["boosters"] = boosters

    def refresh_adapters(current: list[str] | None) -> Any:
        choices = adapter_choices(ctx.runs_dir)
        return gr.update(choices=choices, value=[c for c in (current or []) if c])

    widgets["refresh"].click(
        refresh_adapters, ctx.fields["adapter_name_or_path"], ctx.fields["adapter_name_or_path"]
    )

    def pick(index: int):
        def handler(*values: bool) -> list[Any]:
            if not values[index]:  # unticking the chosen booster falls back to auto
                return [gr.update(value=i == 0) for i in range(len(values))]
            return [gr.update(value=i == index) for i in range(len(values))]

        return handler

    for i, box in enumerate(boosters):
        box.input(pick(i), boosters, boosters)
    return widgets


def booster_updates(lang: str) -> list[Any]:
    """Checkbox updates after detection: unavailable boosters disabled, each with its reason."""
    import gradio as gr

    reasons = detect_boosters()
    updates = []
    for reason in reasons.values():
        if reason is None:
            updates.append(gr.update(interactive=True, info=tr("booster.available", lang)))
        else:
            updates.append(gr.update(interactive=False, value=False, info=tr(reason, lang)))
    return updates
