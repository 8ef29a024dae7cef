"""The kd stage's flat-KD-loss warning."""

from __future__ import annotations

from pathlib import Path

from tunelab.runs import RunDir
from tunelab.train import train
from tunelab.train.kd_health import kd_loss_is_flat

from .test_stage_kd import kd_config


def test_a_kd_loss_that_never_falls_is_flat() -> None:
    assert kd_loss_is_flat([2.0, 2.01, 1.99, 2.0])
    assert not kd_loss_is_flat([2.0, 1.8, 1.7, 1.6])  # learning
    assert not kd_loss_is_flat([2.0, 2.0, 2.0])  # too early to tell
    assert not kd_loss_is_flat([2.0, 2.0, 2.0, 1.9])  # started to move


def test_a_run_whose_student_cannot_move_gets_one_warning(
    tiny_model_dir: Path, tiny_qwen2_dir: Path, tmp_path: Path
) -> None:
    config = kd_config(
        tiny_model_dir, tiny_qwen2_dir, tmp_path / "run", learning_rate=1e-9, max_steps=10, kd_alpha=1.0
    )
    train(config)
    events = [e for e in RunDir(tmp_path / "run").read_events() if e["kind"] == "kd_flat"]
    assert len(events) == 1 and "teacher fits this data" in events[0]["message"]
    assert "学生没有向教师靠近" in events[0]["message_zh"]  # what the Chinese web UI shows
