"""The Export tab: `tunelab export` as a job (merge adapters, shard, safetensors, quantize, verify).

The source is the top bar's model + adapters, or a finished run picked from the list; the settings are
the schema's export_* keys. When the job ends, the tab shows export_report.json: shards, dtype and
the verification result (the export reloaded with plain transformers, logits compared).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tunelab.errors import TunelabError
from tunelab.webui.context import UIContext, error_html, message_html
from tunelab.webui.forms import config_keys, form_to_flat, to_yaml
from tunelab.webui.i18n import headers, tr
from tunelab.webui.jobview import poll_job, start_job_html

__all__ = ["EXPORT_KEYS", "build", "export_report", "start_export"]

# the tab's layout, one tuple per row; a key the schema does not define is left out
EXPORT_KEYS = (
    ("export_dir", "export_hub_model_id"),
    ("export_size", "export_dtype", "export_device"),
    ("export_quantization_bit", "export_quantization_method", "export_quantization_dataset"),
    ("export_quantization_nsamples", "export_quantization_maxlen"),
    ("export_legacy_format", "export_verify"),
)
TOPBAR_SOURCE = "topbar"


def start_export(
    ctx: UIContext,
    lang: str,
    source: str,
    keys: list[str],
    values: list[Any],
    form_values: list[Any],
    *,
    hub_private: bool = False,
    hub_token: str = "",
) -> tuple[str | None, str]:
    """Start `tunelab export`; (job id or None, status html).

    With a Hub model id the job pushes the export there (``--private`` when ``hub_private``); the
    token (or HF_TOKEN / a saved login) reaches only the job's environment, never a file.
    """
    settings = form_to_flat(keys, values)
    repo_id, token = settings.get("export_hub_model_id"), (hub_token or "").strip()
    if repo_id:
        from tunelab.export.hub import has_hub_token

        if not has_hub_token(token):  # refused before the export, not after minutes of it
            return None, message_html(tr("hub.no_token", lang, repo=repo_id), "error")
    push_args = ["--private"] if repo_id and hub_private else []
    try:
        if source and source != TOPBAR_SOURCE:
            run = ctx.guard.check(source, "run")
            if not settings.get("export_dir"):
                settings["export_dir"] = str(run / "export")
            ctx.guard.check_config(settings)
            args = [
                "export",
                "--run",
                str(run),
                *(f"{k}={_scalar(v)}" for k, v in settings.items()),
                *push_args,
            ]
        else:
            flat = ctx.form_flat(form_values)
            model_keys = {k: v for k, v in flat.items() if k in _MODEL_KEYS}
            if not settings.get("export_dir"):
                stamp = time.strftime("%Y%m%d-%H%M%S")
                settings["export_dir"] = str(ctx.runs_dir / f"export-{stamp}")
            merged = {**model_keys, **settings}
            ctx.guard.check_config(merged)
            from tunelab.config import config_from_dict

            config_from_dict(merged, source="web UI export")
            path = ctx.state_dir / "configs" / f"export-{time.strftime('%Y%m%d-%H%M%S')}.yaml"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(to_yaml(merged), encoding="utf-8")
            args = ["export", str(path), *push_args]
    except TunelabError as exc:
        return None, error_html(exc, lang)
    env = {"HF_TOKEN": token} if repo_id and token else None
    job, status = start_job_html(ctx, "export", args, lang, run_dir=settings["export_dir"], env=env)
    return job.id, status


_MODEL_KEYS = (
    "model_name_or_path",
    "adapter_name_or_path",
    "template",
    "finetuning_type",
    "quantization_bit",
    "quantization_method",
    "rope_scaling",
    "trust_remote_code",
)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return "null" if value is None else str(value)


def export_report(ctx: UIContext, lang: str, export_dir: str | None) -> tuple[Any, str]:
    """(table of the export's facts, verification verdict html) from export_report.json."""
    import pandas as pd

    path = Path(export_dir or "") / "export_report.json"
    if not export_dir or not path.is_file():
        return pd.DataFrame(), ""
    report = json.loads(path.read_text(encoding="utf-8"))
    facts = {
        "export_dir": report.get("export_dir"),
        "format": report.get("format"),
        "dtype": report.get("dtype"),
        "n_shards": report.get("n_shards"),
        "size": f"{report.get('total_bytes', 0) / 1e6:.1f}",
        "device": report.get("device"),
        "quantization_bit": report.get("quantization_bit"),
        "quantization_method": report.get("quantization_method"),
        "calibration": _calibration_fact(report.get("calibration"), lang),
        "hub_model_id": report.get("hub_model_id"),
        "chat_template": report.get("chat_template"),
        "base_model": (report.get("source") or {}).get("base_model"),
    }
    rows = [{"key": tr(f"fact.{k}", lang), "value": "" if v is None else str(v)} for k, v in facts.items()]
    table = pd.DataFrame(rows, columns=["key", "value"]).set_axis(headers(["key", "value"], lang), axis=1)
    pushed = _push_html(report.get("hub_push"), lang)
    check = report.get("verification")
    if not check:
        return table, message_html(tr("export.not_verified", lang), "warn") + pushed
    verdict = tr(
        "export.verified" if check.get("passed") else "export.verify_failed",
        lang,
        diff=f"{check.get('max_abs_diff', 0):.3g}",
        tol=f"{check.get('tolerance', 0):.3g}",
        agree=f"{100 * check.get('argmax_agreement', 0):.1f}",
        n=check.get("n_positions", 0),
    )
    return table, message_html(verdict, "ok" if check.get("passed") else "error") + pushed


def _push_html(outcome: dict[str, Any] | None, lang: str) -> str:
    """The Hub push's outcome (export_report.json "hub_push"): its URL, or the error with the way out."""
    if not outcome:
        return ""
    if outcome.get("url"):
        return message_html(tr("hub.pushed", lang, repo=outcome.get("repo_id"), url=outcome["url"]), "ok")
    text = tr(
        "hub.push_failed",
        lang,
        repo=outcome.get("repo_id"),
        error=outcome.get("error"),
        hint=outcome.get("hint"),
    )
    return message_html(text, "error")


def _calibration_fact(calibration: dict[str, Any] | None, lang: str) -> str | None:
    if not calibration:
        return None
    return tr(
        "fact.calibration_value",
        lang,
        n=calibration.get("n_samples"),
        dataset=calibration.get("dataset"),
        maxlen=calibration.get("maxlen"),
    )


def build(ctx: UIContext) -> dict[str, Any]:
    """Build the Export tab inside the current Blocks and wire its events."""
    import gradio as gr

    from tunelab.webui.topbar import adapter_choices

    lang, t = ctx.default_lang, ctx.translator
    known = set(config_keys())
    w: dict[str, Any] = {}
    with gr.Row():
        w["source"] = t.label(
            gr.Dropdown(
                choices=[(tr("export.topbar_source", lang), TOPBAR_SOURCE)],
                value=TOPBAR_SOURCE,
                label=tr("lbl.export_source", lang),
                allow_custom_value=True,
                elem_id="tl-export-source",
                scale=4,
            ),
            "lbl.export_source",
        )
        w["refresh"] = t.value(gr.Button(tr("btn.refresh", lang), scale=0, min_width=90), "btn.refresh")
    keys: list[str] = []
    settings: list[Any] = []
    for row in EXPORT_KEYS:
        present = [k for k in row if k in known]
        if not present:
            continue
        with gr.Row():
            for key in present:
                settings.append(ctx.widget(key, elem_id=f"tl-export-{key}"))
                keys.append(key)
    with gr.Row():  # push to the Hub: the repo id is export_hub_model_id above
        w["hub_private"] = t.label(
            gr.Checkbox(label=tr("lbl.hub_private", lang), elem_id="tl-export-hub-private"), "lbl.hub_private"
        )
        w["hub_token"] = t.label(
            gr.Textbox(
                label=tr("lbl.hub_token", lang),
                info=tr("info.hub_token", lang),
                type="password",
                elem_id="tl-export-hub-token",
                scale=3,
            ),
            "lbl.hub_token",
            "info.hub_token",
        )
    w["start"] = t.value(
        gr.Button(tr("btn.export", lang), variant="primary", elem_id="tl-export-start"), "btn.export"
    )
    w["status"] = gr.HTML("", elem_id="tl-export-status")
    w["verdict"] = gr.HTML("", elem_id="tl-export-verdict")
    w["report"] = t.headers(
        t.label(
            gr.Dataframe(
                headers=headers(["key", "value"], lang),
                label=tr("lbl.export_report", lang),
                interactive=False,
            ),
            "lbl.export_report",
        ),
        ["key", "value"],
    )
    w["log"] = t.label(
        gr.Textbox(
            label=tr("lbl.log", lang), lines=8, max_lines=14, autoscroll=True, elem_id="tl-export-log"
        ),
        "lbl.log",
    )
    w["job_id"] = gr.State(None)
    w["timer"] = gr.Timer(1.5, active=False)

    def sources(lang: str) -> Any:
        runs = [r for r in adapter_choices(ctx.runs_dir) if "checkpoint-" not in Path(r).name]
        return gr.update(choices=[(tr("export.topbar_source", lang), TOPBAR_SOURCE), *runs])

    w["refresh"].click(sources, ctx.lang, w["source"])
    ctx.lang.change(sources, ctx.lang, w["source"])

    def on_start(lang: str, source: str, private: bool, token: str, *values: Any) -> list[Any]:
        job_id, status = start_export(
            ctx,
            lang,
            source,
            keys,
            list(values[: len(keys)]),
            list(values[len(keys) :]),
            hub_private=private,
            hub_token=token,
        )
        return [job_id, status, "", None, gr.Timer(active=job_id is not None)]

    w["start"].click(
        on_start,
        [ctx.lang, w["source"], w["hub_private"], w["hub_token"], *settings, *ctx.form_inputs],
        [w["job_id"], w["status"], w["verdict"], w["report"], w["timer"]],
    )

    def on_tick(lang: str, job_id: str | None) -> list[Any]:
        return poll_job(ctx, lang, job_id, 2, lambda job: list(export_report(ctx, lang, job.run_dir)))

    w["timer"].tick(
        on_tick,
        [ctx.lang, w["job_id"]],
        [w["status"], w["log"], w["report"], w["verdict"], w["timer"]],
        show_progress="hidden",
    )
    w["on_load"] = [(sources, [ctx.lang], [w["source"]])]

    def reattach() -> list[Any]:
        job = ctx.jobs.latest("export", running=True)
        return [job.id if job else None, gr.Timer(active=job is not None)]

    w["on_load"].append((reattach, [], [w["job_id"], w["timer"]]))
    return w
