"""Trainer callbacks that write the run directory, show progress and stop gracefully on a signal."""

from __future__ import annotations

import math
import signal
import time
from datetime import timedelta
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from tunelab.runs.plots import plot_run
from tunelab.runs.rundir import RunDir

__all__ = ["GracefulStopCallback", "ProgressCallback", "RunLogCallback", "format_duration", "is_stage_metric"]


def format_duration(seconds: float) -> str:
    """H:MM:SS, the form LLaMA-Factory's log readers expect."""
    return str(timedelta(seconds=int(max(0.0, seconds))))


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


# Stage metrics copied into trainer_log.jsonl as logged (each also as eval_<name>): rm, dpo, kto, ppo, kd.
_STAGE_METRIC_PREFIXES = ("rewards/", "logps/")
_STAGE_METRICS = frozenset(
    "accuracy margin kl kl_coef reward reward_std policy_loss value_loss entropy clip_fraction "
    "approx_kl response_length kd_loss ce_loss top1_agreement perplexity teacher_ce_loss "
    "teacher_perplexity on_policy_share".split()
)


def is_stage_metric(key: str) -> bool:
    """Whether ``key`` (with or without ``eval_``) is a preference-stage metric the run log keeps."""
    name = key.removeprefix("eval_")
    return name in _STAGE_METRICS or name.startswith(_STAGE_METRIC_PREFIXES)


class RunLogCallback(TrainerCallback):
    """Write one trainer_log.jsonl row per log step and redraw the plots now and then.

    Plots are redrawn after an evaluation or when ``plot_interval`` seconds have passed since the
    last redraw (and at the end): a redraw costs ~0.3-1 s of matplotlib, which per log step made
    short-step runs 20% slower in benchmarks/train_throughput.py.

    Throughput is tokens seen between two log steps over the wall time of the training steps in
    between (data loading included, evaluation and checkpoint saving excluded), so a row after an
    evaluation does not look like a slowdown.
    """

    def __init__(
        self, run: RunDir, *, plot_interval: float = 30.0, plot: bool = True, perplexity: bool = True
    ) -> None:
        self.run = run
        self.perplexity = perplexity  # eval_loss is a token NLL (pt/sft), so eval_perplexity means something
        self.plot_interval = plot_interval
        self.plot = plot
        self._last_plot = time.perf_counter()
        self._start = 0.0
        self._offset = 0.0  # elapsed seconds of earlier sessions of a resumed run
        self._train_seconds = 0.0  # wall time inside training steps since the last log row
        self._session_train_seconds = 0.0
        self._step_started: float | None = None
        self._last_tokens = 0
        self._start_step = 0
        self._start_tokens = 0
        self.last_row: dict[str, Any] = {}

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        self._start = time.perf_counter()
        self._last_tokens = self._start_tokens = state.num_input_tokens_seen
        self._start_step = state.global_step
        previous = [r for r in self.run.read_log() if r.get("current_steps", 0) <= state.global_step]
        self._offset = float(previous[-1].get("elapsed_seconds", 0.0)) if previous else 0.0

    def on_step_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        # the step's batch was fetched just before this; measure from the previous step's end
        if self._step_started is None:
            self._step_started = time.perf_counter()

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        now = time.perf_counter()
        if self._step_started is not None:
            self._train_seconds += now - self._step_started
            self._session_train_seconds += now - self._step_started
        self._step_started = now

    def on_evaluate(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        self._step_started = None  # evaluation time is not training time

    def on_save(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        self._step_started = None

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict | None = None,
        **kw: Any,
    ) -> None:
        logs = logs or {}
        if "train_loss" in logs:  # the end-of-training summary goes to metrics.json instead
            return
        now = time.perf_counter()
        step, total = state.global_step, max(state.max_steps, 1)
        session = now - self._start
        done_here = step - self._start_step
        remaining = session / done_here * (total - step) if done_here > 0 else None
        row: dict[str, Any] = {"current_steps": step, "total_steps": total}
        for key in ("loss", "eval_loss", "learning_rate", "grad_norm"):
            if _finite(logs.get(key)) is not None:
                row[key] = _finite(logs[key])
        row.update({k: _finite(v) for k, v in logs.items() if is_stage_metric(k) and _finite(v) is not None})
        if self.perplexity and "eval_loss" in row and math.isfinite(row["eval_loss"]):
            row["eval_perplexity"] = math.exp(min(row["eval_loss"], 50.0))
        row["epoch"] = round(float(state.epoch or 0.0), 4)
        row["percentage"] = round(100.0 * step / total, 2)
        row["elapsed_time"] = format_duration(self._offset + session)
        row["elapsed_seconds"] = round(self._offset + session, 3)
        if remaining is not None:
            row["remaining_time"] = format_duration(remaining)
        tokens = state.num_input_tokens_seen
        if "loss" in row and tokens > self._last_tokens and self._train_seconds > 0:
            row["tokens_per_second"] = round((tokens - self._last_tokens) / self._train_seconds, 1)
            row["num_input_tokens_seen"] = int(tokens)
            self._last_tokens, self._train_seconds = tokens, 0.0
        self.run.write_log_row(row)
        self.last_row = row
        now = time.perf_counter()
        if self.plot and ("eval_loss" in row or now - self._last_plot >= self.plot_interval):
            plot_run(self.run.path)
            self._last_plot = time.perf_counter()
        if self._step_started is not None:  # logging and plotting are not training time either
            self._step_started = time.perf_counter()

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        if self.plot:
            plot_run(self.run.path)

    def mean_tokens_per_second(self, state: TrainerState) -> float | None:
        """Non-padding tokens per second of training-step time in this session (eval/saving excluded)."""
        elapsed = self._session_train_seconds
        tokens = state.num_input_tokens_seen - self._start_tokens
        return round(tokens / elapsed, 1) if tokens > 0 and elapsed > 0 else None


class ProgressCallback(TrainerCallback):
    """A rich progress bar (step, loss, lr, tokens/s, ETA); plain lines when output is not a terminal."""

    def __init__(self, log_callback: RunLogCallback) -> None:
        from rich.console import Console

        self.console = Console(stderr=True)
        self.log_callback = log_callback
        self._progress: Any = None
        self._task: Any = None

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        if not self.console.is_terminal:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeRemainingColumn(),
            console=self.console,
        )
        self._task = self._progress.add_task(
            "train", total=state.max_steps, completed=state.global_step, stats=""
        )
        self._progress.start()

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=state.global_step)

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict | None = None,
        **kw: Any,
    ) -> None:
        if logs and "train_loss" in logs:  # end-of-training summary: nothing new to show
            return
        row = self.log_callback.last_row
        parts = []
        if "loss" in row:
            parts.append(f"loss {row['loss']:.4f}")
        if "eval_loss" in row:
            parts.append(f"eval_loss {row['eval_loss']:.4f}")
        if "learning_rate" in row:
            parts.append(f"lr {row['learning_rate']:.2e}")
        if "tokens_per_second" in row:
            parts.append(f"{row['tokens_per_second']:.0f} tok/s")
        stats = "  ".join(parts)
        if self._progress is not None:
            self._progress.update(self._task, stats=stats)
        elif parts:
            eta = row.get("remaining_time", "?")
            self.console.print(
                f"step {row.get('current_steps')}/{row.get('total_steps')}  {stats}  ETA {eta}"
            )

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


class GracefulStopCallback(TrainerCallback):
    """On Ctrl-C or SIGTERM: finish the current step, save a checkpoint, then stop.

    A second Ctrl-C falls through to Python's default and aborts at once; one that follows within
    ``repeat_grace`` seconds counts as the same request (under torchrun a rank gets the terminal's
    Ctrl-C and, a moment later, the launcher's forwarded copy). In a multi-process run a signal
    seen by any rank stops every rank after the same step, so all of them save the same checkpoint.
    """

    def __init__(self, *, repeat_grace: float = 2.0) -> None:
        self.requested: str | None = None
        self.repeat_grace = repeat_grace
        self._requested_at = 0.0
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested is not None:
            if time.monotonic() - self._requested_at < self.repeat_grace:
                return
            self.restore()
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name
        self._requested_at = time.monotonic()

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (e.g. a web UI worker): no handler
                pass

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        from tunelab.distributed import any_rank

        if any_rank(self.requested is not None):
            if state.max_steps and state.global_step >= state.max_steps:
                # the signal came during the last step: the run ends here anyway, so finish it (a
                # checkpoint at max_steps would resume into one step too many: transformers checks
                # max_steps only after a step)
                self.requested = None
                return
            self.requested = self.requested or "a signal to another rank"
            control.should_save = True
            control.should_training_stop = True

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        self.restore()

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
