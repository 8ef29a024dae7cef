"""No English left in the Chinese web UI: every widget text of the built app, every UI text, every
error rendering and every plot text, scanned for ASCII words outside the allow-list (i18n_scan)."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import pytest

from tunelab.error_texts import ZH_ERRORS, render_error
from tunelab.errors import ConfigError
from tunelab.runs.plot_texts import OPTUNA_TEXTS, PLOT_TEXTS
from tunelab.webui.i18n import FIELD_LABELS, TEXTS, tr
from tunelab.webui.i18n_scan import untranslated

# widget props that hold text a user reads
_PROPS = ("label", "info", "placeholder")


def _texts_of(block: Any) -> list[tuple[str, str]]:
    """(prop, text) of every text a widget shows: label, info, placeholder, text value, headers, choices."""
    found = [(p, getattr(block, p)) for p in _PROPS if isinstance(getattr(block, p, None), str)]
    value = getattr(block, "value", None)
    kind = type(block).__name__
    if isinstance(value, str) and kind in ("Button", "Markdown", "HTML", "Tab"):
        found.append(("value", html.unescape(re.sub("<[^>]+>", " ", value))))  # the text, not the tags
    headers = getattr(block, "headers", None)
    if kind == "Dataframe" and headers:
        found += [("headers", str(h)) for h in headers]
    for choice in getattr(block, "choices", None) or []:
        found.append(("choices", str(choice[0] if isinstance(choice, (list, tuple)) else choice)))
    return found


@pytest.fixture(scope="module")
def zh_app(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from tunelab.webui.app import create_app

    root = tmp_path_factory.mktemp("webui-zh")
    return create_app(runs_dir=root / "runs", state_dir=root / "state", lang="zh")


def test_every_widget_of_the_chinese_app_is_translated(zh_app: Any) -> None:
    problems = []
    n_texts = 0
    for block in zh_app.blocks.values():
        for prop, text in _texts_of(block):
            n_texts += 1
            if words := untranslated(text):
                problems.append(
                    f"{type(block).__name__} {getattr(block, 'elem_id', '')} {prop}: {text!r} -> {words}"
                )
    assert n_texts > 300, "the walk found too few texts"  # the form alone has >100 fields
    assert problems == []


def test_switching_to_chinese_leaves_no_english(tmp_path: Path) -> None:
    from tunelab.webui.app import create_app

    app = create_app(runs_dir=tmp_path / "runs", state_dir=tmp_path / "state", lang="en")
    ctx = app.tunelab_context
    problems = []
    for component, update in zip(ctx.translator.components, ctx.translator.updates("zh")):
        for prop in ("label", "info", "placeholder", "value"):
            if isinstance(update.get(prop), str) and (words := untranslated(update[prop])):
                problems.append(f"{getattr(component, 'elem_id', '')} {prop}: {update[prop]!r} -> {words}")
        for choice in update.get("choices") or []:
            label = choice[0] if isinstance(choice, tuple) else choice
            if words := untranslated(str(label)):
                problems.append(f"{getattr(component, 'elem_id', '')} choice {label!r} -> {words}")
    assert problems == []


def _filled(template: str) -> str:
    """A text template with its {placeholders} filled by a neutral value."""
    return re.sub(r"\{[^}]*\}", "1", template)


def test_every_text_and_label_has_a_chinese_rendering() -> None:
    bad = {k: words for k, v in TEXTS.items() if (words := untranslated(_filled(v["zh"])))}
    bad |= {k: untranslated(zh) for k, (_, zh) in FIELD_LABELS.items() if untranslated(zh)}
    bad |= {k: untranslated(zh) for k, (_, zh) in PLOT_TEXTS.items() if untranslated(zh)}
    bad |= {k: untranslated(zh) for k, zh in OPTUNA_TEXTS.items() if untranslated(zh)}
    assert bad == {}
    # a zh text equal to the English one must consist of allowed words only (e.g. "GB", "FlashAttention-2")
    same = [k for k, v in TEXTS.items() if v["zh"] == v["en"] and untranslated(_filled(v["en"]))]
    assert same == []


def test_the_schema_help_of_every_form_field_is_chinese(zh_app: Any) -> None:
    from tunelab.webui.forms import field_spec

    keys = zh_app.tunelab_context.translator.field_keys()
    bad = {k: words for k in keys if (words := untranslated(field_spec(k).help("zh")))}
    assert bad == {}


# one example of each error code the catalogue renders, with the parameters the raising code passes
_EXAMPLES: dict[str, dict[str, Any]] = {
    "unknown_key": {"key": "learning_rat", "close": "learning_rate"},
    "unsupported_key": {"key": "use_badam", "owner": "LLaMA-Factory", "meaning": "x", "alternative": "y"},
    "multimodal_key": {"key": "image_max_pixels"},
    "model_required": {},
    "bad_value": {
        "key": "lora_alpha",
        "value": "-1",
        "type": "greater_than",
        "ctx": {"gt": "0"},
        "detail": "",
    },
    "no_train_dataset": {},
    "no_eval_data": {},
    "unknown_dataset": {
        "name": "alpacca",
        "registry": "data/dataset_info.json",
        "close": ["alpaca"],
        "loadable": [],
    },
    "dataset_no_registry": {"name": "x", "registry": "d/dataset_info.json", "suffixes": "json/jsonl"},
    "output_dir_exists": {"path": "runs/a", "finished": False, "checkpoint": "checkpoint-10"},
    "qlora_needs_cuda": {},
    "qlora_needs_package": {"package": "bitsandbytes"},
    "fp16_needs_cuda": {},
    "fa2_unavailable": {"missing": "cuda"},
    "deepspeed_not_installed": {},
    "export_quant_needs_cuda": {"bits": 4},
    "export_quant_needs_package": {"bits": 4, "package": "bitsandbytes"},
    "path_outside": {"key": "output_dir", "path": "/etc", "roots": "/work"},
    "not_a_number": {"what": "GB", "shown": "'abc'"},
    "offload_needs_preset": {},
    "z0_no_offload": {},
    "bad_process_count": {},
}


def test_every_error_code_renders_in_chinese() -> None:
    assert sorted(_EXAMPLES) == sorted(ZH_ERRORS), "add an example for each new code"
    for code, params in _EXAMPLES.items():
        message, hint = render_error(ConfigError("english", "english hint", code=code, params=params), "zh")
        assert message != "english" and not untranslated(message + " " + hint), (code, message, hint)
        # English stays the raised text, whatever the code
        assert render_error(ConfigError("english", "h", code=code, params=params), "en") == ("english", "h")


def test_a_report_of_several_problems_renders_each_in_chinese() -> None:
    from tunelab.config.validate import check_config

    report = check_config(
        {"model_name_or_path": "tiny:llama", "learning_rat": 1e-4, "lora_alpha": -1}, source="web UI form"
    )
    message, hint = render_error(report.error(), "zh")
    assert message.startswith("Web UI 表单 中有 2 个问题")
    assert "未知的配置键 'learning_rat'" in message and "是否想写 'learning_rate'" in message
    assert "lora_alpha=-1：须大于 0" in message
    assert not untranslated(message + hint)


def test_the_error_box_of_the_ui_is_chinese() -> None:
    from tunelab.webui.context import error_html

    exc = ConfigError("training needs a dataset", "set dataset", code="no_train_dataset")
    shown = error_html(exc, "zh")
    assert "训练需要数据集" in shown and tr("hint", "zh") in shown and "training needs" not in shown
    assert "training needs a dataset" in error_html(exc, "en")


def test_job_view_and_events_are_chinese(tmp_path: Path) -> None:
    from tunelab.runs.rundir import RunDir
    from tunelab.webui.jobs import Job
    from tunelab.webui.jobview import job_status_html
    from tunelab.webui.watch import Progress, events_html

    run = RunDir(tmp_path / "run")
    run.write_event("resume", "resuming from checkpoint-4", checkpoint=str(run.path / "checkpoint-4"), step=4)
    run.write_event("interrupted", "SIGINT received: saved checkpoint-6 and stopped", step=6,
                    checkpoint=str(run.path / "checkpoint-6"))  # fmt: skip
    shown = html.unescape(re.sub("<[^>]+>", " ", events_html(run.path, "zh")))
    assert "已中断 · 第 6 步" in shown and "从 checkpoint-4 继续训练" in shown
    assert untranslated(shown) == []
    assert "interrupted · step 6" in html.unescape(events_html(run.path, "en"))

    job = Job("j", "train", ["python", "-m", "tunelab", "train", "c.yaml"], 1, "log", 0.0, status="failed",
              returncode=2, ended=12.0)  # fmt: skip
    box = job_status_html(job, "zh")
    text = re.sub("<code>.*?</code>", "", box)  # the command line is code, not translated
    assert "失败 · 12 秒 · 退出码 2" in text and untranslated(re.sub("<[^>]+>", " ", text)) == []
    assert "<code>tunelab train c.yaml</code>" in box
    progress = Progress(
        step=3, total=10, percentage=30, elapsed="0:01", remaining="0:02", loss=1.5, eval_loss=1.7
    )
    assert untranslated(progress.text("zh")) == [] and "loss 1.5000" in progress.text("en")
