"""Pushing an export to the Hub: the right folder, repo and privacy reach huggingface_hub; no token and
no network fail with messages that keep the export and say what to do."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import huggingface_hub
import pytest
from huggingface_hub import HfApi

from tunelab.errors import ConfigError, ResourceError
from tunelab.export.hub import has_hub_token, push_export, upload_command


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def no_saved_login(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No HF_TOKEN and no `hf auth login` file: huggingface_hub finds no token."""
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))


@pytest.fixture
def export_dir(tmp_path: Path) -> Path:
    out = tmp_path / "export"
    out.mkdir()
    (out / "config.json").write_text("{}")
    (out / "model.safetensors").write_bytes(b"\0" * 16)
    return out


def test_push_creates_the_repo_and_uploads_the_export_folder(
    monkeypatch: pytest.MonkeyPatch, export_dir: Path
) -> None:
    calls: list[tuple[str, dict[str, Any]]] = []

    def create_repo(self: HfApi, repo_id: str, **kw: Any) -> str:
        calls.append(("create_repo", {"repo_id": repo_id, "token": self.token, **kw}))
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self: HfApi, **kw: Any) -> Any:
        calls.append(("upload_folder", kw))
        return type("Commit", (), {"commit_url": f"https://huggingface.co/{kw['repo_id']}/commit/abc"})()

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    url = push_export(export_dir, "me/tiny-sft", private=True, token="hf_test")
    assert url == "https://huggingface.co/me/tiny-sft/commit/abc"
    (first, made), (second, uploaded) = calls
    assert first == "create_repo" and second == "upload_folder"
    assert made["repo_id"] == "me/tiny-sft" and made["private"] is True and made["exist_ok"] is True
    assert made["token"] == "hf_test"
    assert uploaded["repo_id"] == "me/tiny-sft" and Path(uploaded["folder_path"]) == export_dir
    assert uploaded["repo_type"] == "model"


def test_no_token_is_refused_before_any_request(
    no_saved_login: None, monkeypatch: pytest.MonkeyPatch, export_dir: Path
) -> None:
    monkeypatch.setattr(HfApi, "create_repo", lambda *a, **k: pytest.fail("no request without a token"))
    assert not has_hub_token()
    with pytest.raises(ConfigError) as caught:
        push_export(export_dir, "me/tiny-sft")
    assert "set HF_TOKEN or paste a token" in caught.value.hint
    assert has_hub_token("hf_pasted")


def test_unreachable_hub_keeps_the_export_and_says_how_to_push_later(
    monkeypatch: pytest.MonkeyPatch, export_dir: Path
) -> None:
    port = _closed_port()
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", f"http://127.0.0.1:{port}")
    with pytest.raises(ResourceError) as caught:
        push_export(export_dir, "me/tiny-sft", token="hf_test", private=True)
    assert caught.value.message.startswith(f"could not reach 127.0.0.1:{port}: ")
    assert str(export_dir) in caught.value.hint
    assert upload_command("me/tiny-sft", export_dir, private=True) in caught.value.hint
    assert (export_dir / "model.safetensors").is_file()


def _cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tunelab", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200", **env},
        cwd=cwd,
        timeout=300,
    )


def test_cli_push_to_hub_without_token_exports_nothing(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "export"
    env = {"HF_HOME": str(tmp_path / "hf-home"), "HF_TOKEN": ""}
    done = _cli(
        ["export", "--model", str(tiny_model_dir), f"export_dir={out}", "--push-to-hub", "me/tiny"],
        env,
        tmp_path,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "set HF_TOKEN or paste a token" in done.stdout + done.stderr
    assert not out.exists()  # refused before the model was loaded


@pytest.mark.slow
@pytest.mark.ci
def test_cli_push_to_an_unreachable_hub_keeps_the_verified_export(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "export"
    port = _closed_port()
    env = {"HF_ENDPOINT": f"http://127.0.0.1:{port}", "HF_TOKEN": "hf_not_a_real_token"}
    args = [
        "export",
        "--model",
        str(tiny_model_dir),
        f"export_dir={out}",
        "--push-to-hub",
        "me/tiny",
        "--private",
    ]
    done = _cli(args, env, tmp_path)
    text = " ".join((done.stdout + done.stderr).split())  # the console wraps long lines
    assert done.returncode == 2, text
    assert f"could not reach 127.0.0.1:{port}" in text and "hf upload me/tiny" in text and "--private" in text
    report = json.loads((out / "export_report.json").read_text())
    assert report["verification"]["passed"] and report["hub_model_id"] == "me/tiny"
    assert report["hub_push"]["repo_id"] == "me/tiny" and report["hub_push"]["private"] is True
    assert "could not reach" in report["hub_push"]["error"] and "url" not in report["hub_push"]
    assert "hf upload me/tiny" in (out / "README.md").read_text()
