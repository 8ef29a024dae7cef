"""The Export tab shows the quantization method, calibration data and device, and passes them to the job."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

from tunelab.webui.forms import config_keys, field_spec, flat_to_form
from tunelab.webui.i18n import field_label
from tunelab.webui.tabs.export import EXPORT_KEYS, TOPBAR_SOURCE, export_report, start_export

NEW_KEYS = (
    "export_device",
    "export_quantization_method",
    "export_quantization_dataset",
    "export_quantization_nsamples",
    "export_quantization_maxlen",
)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from tunelab.webui.app import create_app

    root = tmp_path_factory.mktemp("webui-export")
    app = create_app(runs_dir=root / "runs", state_dir=root / "state", allowed=[root])
    yield app
    app.tunelab_context.jobs.abort_all()


def _widgets(app: Any) -> dict[str, Any]:
    return {b.elem_id: b for b in app.blocks.values() if getattr(b, "elem_id", None)}


def _settings(**flat: Any) -> tuple[list[str], list[Any]]:
    """The tab's keys (as build() lays them out) and their widget values for `flat`."""
    keys = [key for row in EXPORT_KEYS for key in row if key in set(config_keys())]
    return keys, flat_to_form(keys, flat)


def _form_values(app: Any) -> list[Any]:
    ctx = app.tunelab_context
    return [c.value for c in ctx.fields.values()] + [c.value for c in ctx.extra_inputs] + [{}]


def test_every_export_key_of_the_layout_is_a_shown_schema_field(app: Any) -> None:
    keys = set(config_keys())
    assert sorted(k for row in EXPORT_KEYS for k in row if k not in keys) == []
    widgets = _widgets(app)
    for key in NEW_KEYS:
        widget = widgets[f"tl-export-{key}"]
        assert widget.label == field_label(key, "en") and widget.info == field_spec(key).help("en")
    assert [c[1] for c in widgets["tl-export-export_device"].choices] == ["cpu", "auto"]
    assert [c[1] for c in widgets["tl-export-export_quantization_method"].choices] == ["bnb", "gptq"]
    assert widgets["tl-export-export_quantization_nsamples"].value == 128
    updates = dict(
        zip(map(id, app.tunelab_context.translator.components), app.tunelab_context.translator.updates("zh"))
    )
    assert updates[id(widgets["tl-export-export_device"])]["label"] == "导出设备"


def test_contradicting_quantization_keys_are_refused_before_a_job(app: Any) -> None:
    ctx = app.tunelab_context
    before = len(ctx.jobs.jobs())
    out = ctx.runs_dir / "export-refused"
    keys, values = _settings(export_dir=str(out), export_quantization_dataset="identity_en")
    job_id, status = start_export(ctx, "en", TOPBAR_SOURCE, keys, values, _form_values(app))
    assert job_id is None and "export_quantization_dataset" in status and "export_quantization_bit" in status
    assert len(ctx.jobs.jobs()) == before


@pytest.mark.skipif(
    all(importlib.util.find_spec(n) for n in ("optimum", "gptqmodel")), reason="gptq packages are installed"
)
def test_gptq_settings_reach_the_export_job(app: Any) -> None:
    ctx = app.tunelab_context
    keys, values = _settings(
        export_dir=str(ctx.runs_dir / "export-gptq"),
        export_quantization_bit=4,
        export_quantization_method="gptq",
        export_quantization_dataset="identity_en",
        export_device="auto",
    )
    job_id, status = start_export(ctx, "en", TOPBAR_SOURCE, keys, values, _form_values(app))
    assert job_id is not None, status
    job = ctx.jobs.wait(job_id, timeout=120)
    assert not job.running and job.returncode != 0
    config = next((ctx.state_dir / "configs").glob("export-*.yaml")).read_text()
    for line in (
        "export_quantization_method: gptq",
        "export_quantization_dataset: identity_en",
        "export_device: auto",
    ):
        assert line in config
    log = ctx.jobs.log_tail(job)
    assert "optimum" in log and "gptqmodel" in log  # the job's own ResourceError, as the CLI prints it


def test_export_report_shows_device_method_and_calibration(tmp_path: Path) -> None:
    import json

    report = {
        "export_dir": str(tmp_path),
        "device": "cpu",
        "quantization_bit": 4,
        "quantization_method": "gptq",
        "calibration": {"dataset": "identity_en", "n_samples": 60, "maxlen": 1024},
    }
    (tmp_path / "export_report.json").write_text(json.dumps(report))
    table, _ = export_report(None, "en", str(tmp_path))
    facts = table.set_index("key")["value"]
    assert facts["device"] == "cpu" and facts["quantization_method"] == "gptq"
    assert facts["calibration"] == "60 x identity_en (<= 1024 tokens)"
