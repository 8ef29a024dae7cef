"""The Evaluate & Predict tab: `tunelab eval` as a job, then its metrics, sample predictions and,
with a reference model, the before/after comparison."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tunelab.errors import TunelabError
from tunelab.webui.benchmark_field import benchmark_choices, check_benchmark, describe_benchmark
from tunelab.webui.context import UIContext, error_html, table_cell
from tunelab.webui.forms import form_to_flat, to_yaml
from tunelab.webui.i18n import choices, headers, tr
from tunelab.webui.jobview import poll_job, start_job_html

__all__ = ["BENCHMARK_KEYS", "EVAL_KEYS", "build", "eval_results", "start_eval"]

BENCHMARK_KEYS = ("task", "task_dir", "n_shot", "lang")  # LLaMA-Factory's `tunelab eval` benchmark keys
EVAL_KEYS = (
    ("eval_dataset", "eval_split", "cutoff_len", "max_samples", "per_device_eval_batch_size"),
    ("predict_with_generate", "max_new_tokens", "temperature", "top_p", "do_sample"),
    BENCHMARK_KEYS,
    ("save_dir",),
)
NO_COMPARE = "none"
PREDICTIONS_FILE = "generated_predictions.jsonl"
PREDICTION_COLUMNS = ("prompt", "label", "predict")


def start_eval(
    ctx: UIContext, lang: str, compare: str, keys: list[str], values: list[Any], form_values: list[Any]
) -> tuple[str | None, str]:
    """Start `tunelab eval` on the top bar's model with the tab's settings; (job id, status)."""
    try:
        flat = ctx.form_flat(form_values)
        flat.pop("output_dir", None)
        flat.update(form_to_flat(keys, values))
        if not flat.get("save_dir"):
            flat["save_dir"] = str(ctx.runs_dir / f"eval-{time.strftime('%Y%m%d-%H%M%S')}")
        ctx.guard.check_config(flat)
        task = str(flat.get("task") or "")
        if "/" in task or Path(task).suffix:  # a benchmark file or folder, not a registered name
            ctx.guard.check(task, "task")
        from tunelab.config import config_from_dict
        from tunelab.config.validate import require_for

        require_for(config_from_dict(flat, source="web UI evaluate"), "eval", source="web UI evaluate")
        problem = check_benchmark(flat.get("task"), flat.get("task_dir"), lang)  # data there, before a job
        if problem is not None:
            return None, problem
        args = ["eval"]
        path = ctx.state_dir / "configs" / f"eval-{time.strftime('%Y%m%d-%H%M%S')}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(to_yaml(flat), encoding="utf-8")
        args.append(str(path))
        if compare and compare != NO_COMPARE:
            if compare != "base":
                ctx.guard.check(compare, "compare")
            args += ["--compare", compare]
    except TunelabError as exc:
        return None, error_html(exc, lang)
    job, status = start_job_html(ctx, "eval", args, lang, run_dir=flat["save_dir"])
    return job.id, status


def _metrics_of(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def eval_results(save_dir: str | None, *, n_samples: int = 20, lang: str = "en") -> tuple[Any, Any]:
    """(metrics table — two models side by side with deltas in compare mode —, sample predictions),
    column names in ``lang``."""
    import pandas as pd

    if not save_dir:
        return pd.DataFrame(), pd.DataFrame()
    out = Path(save_dir)
    comparison = out / "comparison.json"
    if comparison.is_file():
        data = json.loads(comparison.read_text(encoding="utf-8"))
        ref, cand, delta = data["reference"], data["candidate"], data.get("delta", {})
        keys = [k for k in cand["metrics"] if k != "model"]
        table = pd.DataFrame(
            [
                {
                    "metric": k,
                    ref["label"]: table_cell(ref["metrics"].get(k)),
                    cand["label"]: table_cell(cand["metrics"].get(k)),
                    "delta": table_cell(delta.get(k)),
                }
                for k in keys
            ]
        )
        predictions = out / "candidate" / PREDICTIONS_FILE
    else:
        metrics = _metrics_of(out)
        table = pd.DataFrame([{"metric": k, "value": table_cell(v)} for k, v in metrics.items()])
        predictions = out / PREDICTIONS_FILE
    rows = []
    if predictions.is_file():
        for line in predictions.read_text(encoding="utf-8").splitlines()[:n_samples]:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            rows.append({k: str(row.get(k, ""))[:400] for k in ("prompt", "label", "predict")})
    table = table.rename(columns={c: headers([c], lang)[0] for c in ("metric", "value", "delta")})
    return table, pd.DataFrame(rows, columns=list(PREDICTION_COLUMNS)).set_axis(
        headers(PREDICTION_COLUMNS, lang), axis=1
    )


def build(ctx: UIContext) -> dict[str, Any]:
    """Build the Evaluate & Predict tab inside the current Blocks and wire its events."""
    import gradio as gr

    from tunelab.webui.tabs.train import dataset_choices
    from tunelab.webui.topbar import adapter_choices

    lang, t = ctx.default_lang, ctx.translator
    w: dict[str, Any] = {}
    keys: list[str] = []
    settings: list[Any] = []
    for row in EVAL_KEYS:
        with gr.Row():
            for key in row:
                extra: dict[str, Any] = {"elem_id": f"tl-eval-{key}"}
                if key == "eval_dataset":
                    extra.update(multiselect=True, choices=dataset_choices("builtin"), scale=2)
                elif key == "task":
                    extra.update(choices=benchmark_choices("builtin"), scale=2)
                settings.append(ctx.widget(key, **extra))
                keys.append(key)
            if row == ("save_dir",):
                w["compare"] = t.label(
                    gr.Dropdown(
                        choices=choices("compare", (NO_COMPARE, "base"), lang),
                        value=NO_COMPARE,
                        allow_custom_value=True,
                        label=tr("lbl.compare_with", lang),
                        info=tr("info.compare_with", lang),
                        elem_id="tl-eval-compare",
                        scale=2,
                    ),
                    "lbl.compare_with",
                    "info.compare_with",
                )
        if row == BENCHMARK_KEYS:  # what the chosen benchmark holds, or which files it lacks
            w["bench_info"] = gr.HTML("", elem_id="tl-eval-bench-info")
    with gr.Row():
        w["start"] = t.value(
            gr.Button(tr("btn.evaluate", lang), variant="primary", elem_id="tl-eval-start"), "btn.evaluate"
        )
        w["abort"] = t.value(gr.Button(tr("btn.abort", lang), variant="stop"), "btn.abort")
    w["status"] = gr.HTML("", elem_id="tl-eval-status")
    w["metrics"] = t.headers(
        t.label(
            gr.Dataframe(
                headers=headers(["metric", "value"], lang),
                label=tr("lbl.metrics", lang),
                interactive=False,
                elem_id="tl-eval-metrics",
            ),
            "lbl.metrics",
        ),
        ["metric", "value"],
    )
    w["predictions"] = t.headers(
        t.label(
            gr.Dataframe(
                headers=headers(PREDICTION_COLUMNS, lang),
                label=tr("lbl.predictions", lang),
                interactive=False,
                wrap=True,
                column_widths=["40%", "30%", "30%"],
            ),
            "lbl.predictions",
        ),
        PREDICTION_COLUMNS,
    )
    w["log"] = t.label(
        gr.Textbox(label=tr("lbl.log", lang), lines=6, max_lines=12, autoscroll=True), "lbl.log"
    )
    w["job_id"] = gr.State(None)
    w["timer"] = gr.Timer(1.5, active=False)
    dataset_widget = settings[keys.index("eval_dataset")]

    def refresh_choices(lang: str, dataset_dir: str) -> list[Any]:
        runs = [r for r in adapter_choices(ctx.runs_dir) if "checkpoint-" not in Path(r).name]
        return [
            gr.update(choices=dataset_choices(dataset_dir)),
            gr.update(choices=[*choices("compare", (NO_COMPARE, "base"), lang), *runs]),
        ]

    ctx.fields["dataset_dir"].change(
        refresh_choices, [ctx.lang, ctx.fields["dataset_dir"]], [dataset_widget, w["compare"]]
    )
    # datasets added meanwhile (the Train tab's upload) appear when the list is opened
    dataset_widget.focus(
        lambda folder: gr.update(choices=dataset_choices(folder)), ctx.fields["dataset_dir"], dataset_widget
    )
    task_widget, task_dir_widget = settings[keys.index("task")], settings[keys.index("task_dir")]
    task_dir_widget.change(
        lambda task_dir: gr.update(choices=benchmark_choices(task_dir)), task_dir_widget, task_widget
    )
    for widget in (task_widget, task_dir_widget):
        widget.change(describe_benchmark, [task_widget, task_dir_widget, ctx.lang], w["bench_info"])
    ctx.lang.change(refresh_choices, [ctx.lang, ctx.fields["dataset_dir"]], [dataset_widget, w["compare"]])

    def on_start(lang: str, compare: str, *values: Any) -> list[Any]:
        job_id, status = start_eval(
            ctx, lang, compare, keys, list(values[: len(keys)]), list(values[len(keys) :])
        )
        return [job_id, status, gr.Timer(active=job_id is not None)]

    w["start"].click(
        on_start,
        [ctx.lang, w["compare"], *settings, *ctx.form_inputs],
        [w["job_id"], w["status"], w["timer"]],
    )
    w["abort"].click(lambda job_id: ctx.jobs.abort(job_id) and None, w["job_id"], None)

    def on_tick(lang: str, job_id: str | None) -> list[Any]:
        return poll_job(ctx, lang, job_id, 2, lambda job: list(eval_results(job.run_dir, lang=lang)))

    w["timer"].tick(
        on_tick,
        [ctx.lang, w["job_id"]],
        [w["status"], w["log"], w["metrics"], w["predictions"], w["timer"]],
        show_progress="hidden",
    )
    w["on_load"] = [(refresh_choices, [ctx.lang, ctx.fields["dataset_dir"]], [dataset_widget, w["compare"]])]

    def reattach() -> list[Any]:
        job = ctx.jobs.latest("eval", running=True)
        return [job.id if job else None, gr.Timer(active=job is not None)]

    w["on_load"].append((reattach, [], [w["job_id"], w["timer"]]))
    return w
