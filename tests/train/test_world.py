"""What resuming in another world says: exact at the same global batch, and how to make it exact otherwise."""

from __future__ import annotations

import json
from pathlib import Path

from tunelab.config import RunConfig, config_from_dict
from tunelab.runs import RunDir
from tunelab.train.world import WORLD_FILE, describe_resume_world


class _Ctx:
    def __init__(self) -> None:
        self.said: list[str] = []

    def say(self, text: str) -> None:
        self.said.append(text)


def _config(tmp_path: Path, accumulation: int) -> RunConfig:
    """One process, 2 samples per device, ``accumulation`` steps."""
    return config_from_dict(
        {
            "model_name_or_path": "tiny:llama",
            "dataset": "instruct_en",
            "dataset_dir": "builtin",
            "output_dir": str(tmp_path / "run"),
            "per_device_train_batch_size": 2,
            "gradient_accumulation_steps": accumulation,
        }
    )


def _resume(tmp_path: Path, before: dict[str, int], accumulation: int) -> tuple[dict, list[str]]:
    checkpoint = tmp_path / "run" / "checkpoint-6"
    checkpoint.mkdir(parents=True)
    (checkpoint / WORLD_FILE).write_text(json.dumps(before), encoding="utf-8")
    run, ctx = RunDir(tmp_path / "run"), _Ctx()
    describe_resume_world(run, checkpoint, _config(tmp_path, accumulation), ctx)
    events = [e for e in run.read_events() if e["kind"] == "resume_world"]
    assert len(events) == 1
    return events[0], ctx.said


TWO_PROCESSES = {
    "world_size": 2,
    "per_device_train_batch_size": 2,
    "gradient_accumulation_steps": 1,
    "global_batch_size": 4,
}


def test_same_global_batch_with_fewer_processes_is_exact_in_both_languages(tmp_path: Path) -> None:
    event, said = _resume(tmp_path, TWO_PROCESSES, accumulation=2)  # 1 process x 2 x 2 = 4, as before
    assert event["exact"] is True and event["step"] == 6
    assert "exact" in said[0] and "不可能" not in event["message_zh"]
    assert "精确的" in event["message_zh"] and "全局批大小同为 4" in event["message_zh"]


def test_another_global_batch_says_which_accumulation_makes_it_exact(tmp_path: Path) -> None:
    event, said = _resume(tmp_path, TWO_PROCESSES, accumulation=1)  # 1 process x 2 x 1 = 2
    assert event["exact"] is False
    assert "gradient_accumulation_steps=2" in said[0]
    assert "无法精确续训" in event["message_zh"] and "gradient_accumulation_steps=2" in event["message_zh"]


def test_same_world_says_nothing(tmp_path: Path) -> None:
    checkpoint = tmp_path / "run" / "checkpoint-3"
    checkpoint.mkdir(parents=True)
    same = dict(TWO_PROCESSES, world_size=1, global_batch_size=2)
    (checkpoint / WORLD_FILE).write_text(json.dumps(same), encoding="utf-8")
    ctx = _Ctx()
    describe_resume_world(RunDir(tmp_path / "run"), checkpoint, _config(tmp_path, 1), ctx)
    assert ctx.said == [] and not RunDir(tmp_path / "run").read_events()
