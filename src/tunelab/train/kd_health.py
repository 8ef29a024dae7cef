"""The kd stage's own health rule: a KD loss flat from the first log steps on.

When the student cannot move towards the teacher at all, the usual cause is a teacher that does not
fit the data (another chat template, another task, a random or broken checkpoint: its distributions
are noise the student cannot follow) or a learning rate far too low. The rule warns once, with an
event in events.jsonl, and never stops the run: a flat KD loss is a symptom worth reading, not a crash.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from transformers import TrainerCallback

from tunelab.runs.rundir import RunDir

__all__ = ["KDFlatLossCallback", "kd_loss_is_flat"]


def kd_loss_is_flat(values: Sequence[float], *, min_points: int = 4, min_drop: float = 0.02) -> bool:
    """True when ``min_points`` or more logged KD losses never fell ``min_drop`` (relative) below the first."""
    if len(values) < min_points or values[0] <= 0:
        return False
    recent = sum(values[-2:]) / 2
    return (values[0] - min(recent, min(values[1:]))) / values[0] < min_drop


class KDFlatLossCallback(TrainerCallback):
    """Warn once (event ``kd_flat`` + a console line) when :func:`kd_loss_is_flat` holds."""

    def __init__(self, run: RunDir, *, say: Any = None) -> None:
        self.run, self.say = run, say
        self.values: list[float] = []
        self.warned = False

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kw: Any) -> None:
        value = (logs or {}).get("kd_loss")
        if value is None or self.warned:
            return
        self.values.append(float(value))
        if kd_loss_is_flat(self.values):
            self.warned = True
            message = (
                f"kd_loss has stayed at {self.values[0]:.4g} since the first log step (now {self.values[-1]:.4g}): "
                "the student is not moving towards the teacher. Check that the teacher fits this data "
                "(same chat template and task; eval_teacher_perplexity should be low), or raise learning_rate"
            )
            message_zh = (
                f"kd_loss 自第一个日志步起一直停在 {self.values[0]:.4g}（现在 {self.values[-1]:.4g}）："
                "学生没有向教师靠近。请检查教师是否适合这份数据（相同的对话模板和任务；"
                "eval_teacher_perplexity 应当较低），或提高 learning_rate"
            )
            self.run.write_event("kd_flat", message, step=state.global_step, message_zh=message_zh)
            if self.say is not None:
                self.say(f"[warning] {message}")
