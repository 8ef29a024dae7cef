"""The Export tab's Hub push: no token is refused before the export, a token and the private flag reach
the job (the token only through its environment), and the report shows how the push ended."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import huggingface_hub
import pytest

from tunelab.webui.context import UIContext
from tunelab.webui.forms import config_keys, flat_to_form
from tunelab.webui.tabs.export import EXPORT_KEYS, TOPBAR_SOURCE, export_report, start_export

KEYS = [key for row in EXPORT_KEYS for key in row if key in set(config_keys())]
FORM = [{"model_name_or_path": "tiny:llama"}]  # the top bar's model, as loaded config extras


class _Job:
    id = "job-1"
    command_line = "tunelab export ..."


@pytest.fixture
def ctx(ui_context: UIContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> UIContext:
    """No HF token anywhere; jobs are recorded (args, keywords) instead of started."""
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "no-saved-login"))
    context = ui_context
    context.started = []  # type: ignore[attr-defined]

    def start(kind: str, args: list[str], **kw: Any) -> _Job:
        context.started.append((args, kw))  # type: ignore[attr-defined]
        return _Job()

    monkeypatch.setattr(context.jobs, "start", start)
    return context


def _values(tmp_path: Path, **flat: Any) -> list[Any]:
    return flat_to_form(KEYS, {"export_dir": str(tmp_path / "export"), **flat})


def test_no_token_is_refused_before_the_export(ctx: UIContext, tmp_path: Path) -> None:
    values = _values(tmp_path, export_hub_model_id="me/tiny")
    for lang, words in (("en", "set HF_TOKEN or paste a token"), ("zh", "请设置 HF_TOKEN 或粘贴令牌")):
        job_id, status = start_export(ctx, lang, TOPBAR_SOURCE, KEYS, values, FORM)
        assert job_id is None and words in status and "me/tiny" in status
    assert ctx.started == []  # type: ignore[attr-defined]


def test_token_and_private_flag_reach_the_job_but_no_file(ctx: UIContext, tmp_path: Path) -> None:
    values = _values(tmp_path, export_hub_model_id="me/tiny")
    job_id, _ = start_export(
        ctx, "en", TOPBAR_SOURCE, KEYS, values, FORM, hub_private=True, hub_token=" hf_pasted "
    )
    assert job_id == "job-1"
    ((args, kw),) = ctx.started  # type: ignore[attr-defined]
    assert args[0] == "export" and args[-1] == "--private"
    assert kw["env"] == {"HF_TOKEN": "hf_pasted"}
    config = Path(args[1]).read_text()
    assert "export_hub_model_id: me/tiny" in config and "hf_pasted" not in config


def test_without_a_hub_id_nothing_is_pushed(ctx: UIContext, tmp_path: Path) -> None:
    job_id, _ = start_export(ctx, "en", TOPBAR_SOURCE, KEYS, _values(tmp_path), FORM, hub_private=True)
    ((args, kw),) = ctx.started  # type: ignore[attr-defined]
    assert job_id == "job-1" and "--private" not in args and kw["env"] is None


def test_report_shows_the_push_outcome(tmp_path: Path) -> None:
    report = {"export_dir": str(tmp_path), "hub_push": {"repo_id": "me/tiny", "url": "https://hf.co/me/tiny"}}
    (tmp_path / "export_report.json").write_text(json.dumps(report))
    _, verdict = export_report(None, "en", str(tmp_path))
    assert "Pushed to the Hub repo me/tiny: https://hf.co/me/tiny" in verdict
    report["hub_push"] = {
        "repo_id": "me/tiny",
        "error": "could not reach huggingface.co: [Errno 101] Network is unreachable",
        "hint": f"the export is at {tmp_path}; push it later with `hf upload me/tiny {tmp_path} .`",
    }
    (tmp_path / "export_report.json").write_text(json.dumps(report))
    _, verdict = export_report(None, "zh", str(tmp_path))
    assert "推送到 me/tiny 失败：could not reach huggingface.co" in verdict and "hf upload me/tiny" in verdict
