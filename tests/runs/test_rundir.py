"""Run directory: atomic files, torn-line tolerance, checkpoints, plots, model card."""

from __future__ import annotations

import json
from pathlib import Path

from tunelab.runs import RunDir, plot_run, smooth, write_model_card


def test_log_rows_events_and_metrics_round_trip(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    run.write_log_row({"current_steps": 1, "loss": 2.0})
    run.write_log_row({"current_steps": 2, "loss": 1.5})
    run.write_event("resume", "resuming from checkpoint-2", step=2)
    run.write_metrics({"train_loss": 1.7})
    run.write_metrics({"eval_loss": 1.9})
    assert [r["loss"] for r in run.read_log()] == [2.0, 1.5]
    assert run.read_events()[0]["kind"] == "resume" and run.read_events()[0]["step"] == 2
    assert run.read_metrics() == {"train_loss": 1.7, "eval_loss": 1.9}


def test_torn_last_line_is_skipped(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    run.write_log_row({"current_steps": 1, "loss": 2.0})
    with run.log_path.open("a") as handle:
        handle.write('{"current_steps": 2, "lo')  # a writer killed mid-line
    assert run.read_log() == [{"current_steps": 1, "loss": 2.0}]


def test_truncate_log_after_resume_point(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    for step in (5, 10, 15):
        run.write_log_row({"current_steps": step, "loss": 1.0})
    run.truncate_log_after(10)
    assert [r["current_steps"] for r in run.read_log()] == [5, 10]


def test_only_complete_checkpoints_count(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    for step in (10, 2, 30):
        (tmp_path / f"checkpoint-{step}").mkdir()
        (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    (tmp_path / "checkpoint-40").mkdir()  # killed before trainer_state.json was written
    (tmp_path / "checkpoint-50").mkdir()
    (tmp_path / "checkpoint-50" / "trainer_state.json").write_text('{"glob')  # torn
    assert [p.name for p in run.checkpoints()] == ["checkpoint-2", "checkpoint-10", "checkpoint-30"]
    assert run.latest_checkpoint() == tmp_path / "checkpoint-30"


def test_smooth_is_bias_corrected_and_flat_on_constant() -> None:
    assert smooth([3.0] * 10) == [3.0] * 10 or all(abs(v - 3.0) < 1e-12 for v in smooth([3.0] * 10))
    values = smooth([1.0, 0.0], weight=0.5)
    assert values[0] == 1.0 and abs(values[1] - (0.25 / 0.75)) < 1e-12


def test_plots_written_from_the_log(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    for step in range(1, 11):
        run.write_log_row(
            {"current_steps": step, "loss": 3.0 / step, "learning_rate": 1e-3 * step, "grad_norm": 1.0}
        )
    run.write_log_row({"current_steps": 10, "eval_loss": 0.5})
    written = plot_run(tmp_path)
    assert {p.name for p in written} == {"loss.png", "lr.png", "grad_norm.png"}
    for path in written:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_model_card_lists_settings_and_results(tmp_path: Path) -> None:
    path = write_model_card(
        tmp_path,
        {"base_model": "tiny:llama", "stage": "sft", "finetuning_type": "lora", "lora_rank": 8},
        {"train_loss": 1.23456, "eval_loss": 1.5},
    )
    text = path.read_text()
    assert (
        "base_model: tiny:llama" in text and "| lora_rank | 8 |" in text and "| train_loss | 1.235 |" in text
    )
    assert "AutoPeftModelForCausalLM" in text


def test_a_rank_other_than_0_writes_nothing(tmp_path: Path) -> None:
    """In a multi-process run every rank holds a RunDir; only the writer's rows reach the files."""
    reader = RunDir(tmp_path / "run", writer=False)
    reader.create()
    reader.write_config("a: 1\n")
    reader.write_log_row({"current_steps": 1, "loss": 1.0})
    reader.write_event("health", "stop", step=1)
    reader.write_metrics({"train_loss": 1.0})
    assert not (tmp_path / "run").exists()
    writer = RunDir(tmp_path / "run", writer=True)
    writer.write_log_row({"current_steps": 1, "loss": 1.0})
    assert reader.read_log() == [{"current_steps": 1, "loss": 1.0}]
