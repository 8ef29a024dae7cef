"""`tunelab data check` / `data clean` from the command line: exit codes CI can gate on, files written."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from tunelab.cli import app

runner = CliRunner()


def _args(data_dir, dataset, tmp_path):
    return [
        "model_name_or_path=tiny:llama",
        f"dataset={dataset}",
        f"dataset_dir={data_dir}",
        "template=chatml",
        f"output_dir={tmp_path / 'run'}",
    ]


def test_check_exits_1_on_problems_and_0_when_clean(data_dir, tmp_path):
    out = tmp_path / "report"
    dirty = runner.invoke(
        app, ["data", "check", *_args(data_dir, "sft", tmp_path), "-o", str(out), "--no-tokens"]
    )
    assert dirty.exit_code == 1, dirty.output
    assert "exact duplicates" in dirty.output
    assert json.loads((out / "report.json").read_text())["counts"]["exact"] == 1
    cleaned = tmp_path / "cleaned"
    done = runner.invoke(app, ["data", "clean", *_args(data_dir, "sft", tmp_path), "-o", str(cleaned)])
    assert done.exit_code == 0, done.output
    assert "removed.jsonl" in done.output and f"dataset_dir={cleaned}" in done.output
    clean = runner.invoke(
        app,
        [
            "data",
            "check",
            *_args(cleaned, "sft", tmp_path),
            "-o",
            str(out),
            "--no-tokens",
            "--fail-on",
            "exact,near,malformed,empty",
        ],
    )
    assert clean.exit_code == 0, clean.output


def test_check_rejects_an_unknown_kind_with_a_hint(data_dir, tmp_path):
    result = runner.invoke(app, ["data", "check", *_args(data_dir, "sft", tmp_path), "--fail-on", "dupes"])
    assert result.exit_code == 2  # a usage error, not a finding
    assert "dupes" in result.output and "Traceback" not in result.output
