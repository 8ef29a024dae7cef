"""Schemathesis against the live server's /openapi.json: generated valid and invalid requests never
get a 5xx, and every answer (status, headers, body) is one the spec documents."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tunelab.infer.api import ServeOptions, create_app
from tunelab.infer.engine import ChatEngine

KEY = "fuzz-key"
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


@pytest.mark.ci
@pytest.mark.slow  # ~2-3 minutes: schemathesis' budget (--max-time) plus the model load
def test_schemathesis_finds_no_server_error_or_spec_mismatch(
    tiny_engine: ChatEngine, serve_app: Callable, tmp_path: Path
) -> None:
    pytest.importorskip("schemathesis")
    # a 64-token context keeps each generated request short, so the budget covers many of them;
    # any model name is served, so that generated requests reach generation instead of a 404
    short = ChatEngine(
        tiny_engine.model, tiny_engine.tokenizer, tiny_engine.template, max_context=64, name="tiny"
    )
    options = ServeOptions(request_timeout=20, max_body_bytes=256 * 1024, accept_any_model=True)
    with serve_app(create_app(short, model_id="tiny", api_key=KEY, options=options)) as url:
        command = [sys.executable, "-m", "schemathesis.cli", "run", f"{url}/openapi.json",
                   "-H", f"Authorization: Bearer {KEY}", "--checks", CHECKS, "--max-examples", "40",
                   "--max-time", "120", "--request-timeout", "30", "--seed", "1", "--workers", "1",
                   "--suppress-health-check", "all"]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
