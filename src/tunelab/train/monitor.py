"""The health monitor: a TrainerCallback that measures each log step, runs the rules and acts on them.

At every training log step it measures, besides the logged loss and gradient norm, how far the
trainable weights moved (:class:`WeightProbe`, a fixed sample of a few weights per tensor: ~zero cost),
hands a :class:`~tunelab.train.health.LogPoint` to the pure rules of ``health.py`` and applies the
action :func:`~tunelab.train.health.decide` picks:

- warn: an event and a message.
- halve_lr: :func:`scale_learning_rate` on the optimizer *and* the scheduler, so the schedule goes on
  at half scale and a resumed run keeps it (both state dicts carry the scaled values).
- rollback: restore the last healthy state, then halve the LR. The state is a host-memory copy of the
  trainable weights and the optimizer state taken at the last healthy log step
  (:class:`TrainableSnapshot`, kept when there are at most ``health.snapshot_max_params`` trainable
  parameters: for LoRA a few MB copied per log step; for full fine-tuning with AdamW it would cost 3x
  the model size in host memory and a copy of it at every log step, which is why big models use the
  disk instead). Without a copy it reloads the latest checkpoint that a healthy log step confirmed.
  A copy is always at least as recent as such a checkpoint, so it is preferred. The data position and
  the schedule are not rewound: training goes on with the next batches.
  halve_lr and rollback count towards ``health.max_interventions``; past it they become stop.
- stop: save a checkpoint and end the run. When the weights themselves are broken (NaN, divergence,
  exploding gradients) the healthy state is restored first, so the checkpoint left behind is usable.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from tunelab.compat.torch import scale_scheduler_state
from tunelab.config.control import HealthArgs
from tunelab.distributed import broadcast_decision, is_writer
from tunelab.runs.rundir import RunDir
from tunelab.train.health import INTERVENTIONS, Decision, Finding, HealthHistory, LogPoint, decide
from tunelab.train.messages import describe_action, describe_health, text

__all__ = [
    "HealthMonitor",
    "TrainableSnapshot",
    "WeightProbe",
    "load_checkpoint_state",
    "scale_learning_rate",
]

# Rules whose firing means the current weights are damaged: a stop restores the healthy state first.
_BREAKS_WEIGHTS = ("nonfinite", "update_ratio", "grad_norm")


def scale_learning_rate(optimizer: Any, scheduler: Any, factor: float) -> tuple[float, float]:
    """Multiply every param group's LR and the scheduler's base LRs by ``factor``; returns (old, new).

    LambdaLR-style schedules (all transformers ones) compute lr = base_lr x f(step), so scaling
    ``base_lrs`` makes the rest of the schedule run at the new scale; chainable schedulers
    (StepLR, ReduceLROnPlateau) continue from the param groups' ``lr``. The scaled values live in the
    optimizer and scheduler state dicts, which every checkpoint saves, so a resumed run keeps them.
    """
    old = float(optimizer.param_groups[0]["lr"])
    for group in optimizer.param_groups:
        group["lr"] = group["lr"] * factor
        if "initial_lr" in group:
            group["initial_lr"] = group["initial_lr"] * factor
    if scheduler is not None and hasattr(scheduler, "state_dict"):
        scheduler.load_state_dict(scale_scheduler_state(scheduler.state_dict(), factor))
    return old, float(optimizer.param_groups[0]["lr"])


def _trainable(model: torch.nn.Module) -> list[tuple[str, torch.nn.Parameter]]:
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad and p.numel() > 0]


class WeightProbe:
    """A fixed random sample of the trainable weights: how far they move, and whether they are finite.

    Gathering ``per_tensor`` elements of each trainable tensor costs microseconds, where comparing
    whole weight copies would cost a pass over the model at every log step.
    """

    def __init__(self, model: torch.nn.Module, *, per_tensor: int = 16, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.params = [p for _, p in _trainable(model)]
        self.index = [
            torch.randint(p.numel(), (min(per_tensor, p.numel()),), generator=generator).to(p.device)
            for p in self.params
        ]

    def sample(self) -> torch.Tensor | None:
        """The sampled weights as one float32 CPU vector (None when nothing is trainable)."""
        if not self.params:
            return None
        with torch.no_grad():
            parts = [p.detach().reshape(-1)[i].float() for p, i in zip(self.params, self.index)]
            return torch.cat([part.cpu() for part in parts])


def _relative_change(before: torch.Tensor | None, after: torch.Tensor | None) -> float | None:
    if before is None or after is None:
        return None
    size = float(before.norm())
    if not size > 0 or not bool(torch.isfinite(after).all()):
        return None
    return float((after - before).norm()) / size


def _to_cpu(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_cpu(v) for v in value]
    return value


def _load_optimizer_keeping_lr(optimizer: Any, state: dict[str, Any]) -> None:
    """Load ``state`` into the optimizer but keep the current LRs (they may have been halved since)."""
    current = [(g["lr"], g.get("initial_lr")) for g in optimizer.param_groups]
    optimizer.load_state_dict(state)
    for group, (lr, initial) in zip(optimizer.param_groups, current):
        group["lr"] = lr
        if initial is not None:
            group["initial_lr"] = initial


class TrainableSnapshot:
    """Host-memory copy of the trainable weights and the optimizer state at one step."""

    def __init__(self, model: torch.nn.Module, optimizer: Any, step: int) -> None:
        self.step = step
        self.params = {n: p.detach().to("cpu", copy=True) for n, p in _trainable(model)}
        self.optimizer_state = _to_cpu(optimizer.state_dict()) if optimizer is not None else None

    def restore(self, model: torch.nn.Module, optimizer: Any) -> None:
        """Copy the saved weights (and optimizer moments, keeping the current LR) back into place."""
        with torch.no_grad():
            for name, param in _trainable(model):
                if name in self.params:
                    param.copy_(self.params[name])
        if optimizer is not None and self.optimizer_state is not None:
            # load a copy: the optimizer would otherwise update the snapshot's tensors in place
            _load_optimizer_keeping_lr(optimizer, _to_cpu(self.optimizer_state))


def load_checkpoint_state(model: torch.nn.Module, optimizer: Any, checkpoint: Path) -> bool:
    """Load a checkpoint's weights (adapter or full model) and optimizer state; False if it has none."""
    from safetensors.torch import load_file

    adapter = checkpoint / "adapter_model.safetensors"
    index = checkpoint / "model.safetensors.index.json"
    if adapter.is_file():
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(model, load_file(adapter))
    elif (checkpoint / "model.safetensors").is_file():
        model.load_state_dict(load_file(checkpoint / "model.safetensors"), strict=False)
    elif index.is_file():
        for shard in sorted(set(json.loads(index.read_text())["weight_map"].values())):
            model.load_state_dict(load_file(checkpoint / shard), strict=False)
    else:
        return False
    optimizer_file = checkpoint / "optimizer.pt"
    if optimizer is not None and optimizer_file.is_file():
        state = torch.load(optimizer_file, map_location="cpu", weights_only=True)
        _load_optimizer_keeping_lr(optimizer, state)
    return True


def _number(value: Any) -> float | None:
    if isinstance(value, torch.Tensor):
        value = value.item()
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


class HealthMonitor(TrainerCallback):
    """Run the health rules at each log step and apply their actions (see the module docstring).

    After a stop, ``stop_reason`` holds the message and ``stop_checkpoint`` the saved checkpoint.
    """

    kind = "health"  # the events.jsonl kind it writes; the runner can name what stopped a run

    def __init__(
        self,
        settings: HealthArgs,
        run: RunDir,
        *,
        learning_rate: float,
        lang: str = "en",
        console: Any = None,
    ) -> None:
        self.settings = settings
        self.run = run
        self.learning_rate = learning_rate  # the configured peak: suggestions are relative to it
        self.lang = lang
        self.console = console
        self.interventions = 0
        self._warnings: dict[str, int] = {}  # rule -> warnings given (each repeat waits longer)
        self.stop_reason: str | None = None
        self.stop_checkpoint: Path | None = None
        self.history = HealthHistory(settings)
        self._stop_step: int | None = None
        self._probe: WeightProbe | None = None
        self._last_sample: torch.Tensor | None = None
        self._last_step = 0
        self._snapshot: TrainableSnapshot | None = None
        self._use_snapshots = False
        self._healthy_step = 0
        self._good_checkpoints: list[tuple[int, Path]] = []
        self._pending_checkpoints: list[tuple[int, Path]] = []
        self._max_grad_norm = 0.0
        self._training = False

    # setup --------------------------------------------------------------------------------------
    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        model, optimizer = kw.get("model"), kw.get("optimizer")
        self._training = True
        self.history = HealthHistory(self.settings)  # fresh windows, also after a resume
        self._max_grad_norm = args.max_grad_norm
        self._last_step = self._healthy_step = state.global_step
        self.interventions = sum(
            1
            for e in self.run.read_events()
            if e.get("kind") == "health"
            and e.get("action") in INTERVENTIONS
            and e.get("step", 0) <= state.global_step
        )
        self._good_checkpoints, self._pending_checkpoints = [], []
        resumed = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if state.global_step > 0 and resumed.is_dir():  # the state we resumed from counts as healthy
            self._good_checkpoints.append((state.global_step, resumed))
        if model is None:
            return
        self._probe = WeightProbe(model)
        self._last_sample = self._probe.sample()
        actions = self.settings.rule_actions()
        # a copy serves rollback, and a stop (or an escalated intervention) on broken weights
        wanted = "rollback" in actions.values() or any(
            actions[r] not in ("off", "warn") for r in _BREAKS_WEIGHTS
        )
        n_trainable = sum(p.numel() for _, p in _trainable(model))
        self._use_snapshots = wanted and 0 < n_trainable <= self.settings.snapshot_max_params
        if self._use_snapshots:
            self._snapshot = TrainableSnapshot(model, optimizer, state.global_step)

    # each log step ------------------------------------------------------------------------------
    def _measure(self, logs: dict[str, Any], state: TrainerState) -> LogPoint:
        sample = self._probe.sample() if self._probe is not None else None
        steps = state.global_step - self._last_step
        change = _relative_change(self._last_sample, sample)
        self._last_sample, self._last_step = sample, state.global_step
        return LogPoint(
            step=state.global_step,
            loss=_number(logs.get("loss")),
            grad_norm=_number(logs.get("grad_norm")),
            learning_rate=_number(logs.get("learning_rate")),
            update_ratio=change / steps if change is not None and steps > 0 else None,
            weights_finite=bool(torch.isfinite(sample).all()) if sample is not None else None,
        )

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict | None = None,
        **kw: Any,
    ) -> None:
        logs = logs or {}
        if "train_loss" in logs or not self._training or self._stop_step is not None:
            return  # (the end-of-training summary and evaluations after training decide nothing)
        # rank 0's findings decide on every rank: all act at this same step (the logged loss is
        # already the mean over ranks, and DDP keeps the weights equal, so they would agree anyway)
        if "loss" in logs:
            findings = broadcast_decision(self.history.add_train(self._measure(logs, state)))
            if not findings:
                self._mark_healthy(state.global_step, kw.get("model"), kw.get("optimizer"))
                return
            self._pending_checkpoints.clear()  # saved since the last healthy step: not trusted
        elif _number(logs.get("eval_loss")) is not None:
            findings = broadcast_decision(self.history.add_eval(state.global_step, float(logs["eval_loss"])))
        else:
            return
        decision = decide(
            findings,
            self.settings.rule_actions(),
            interventions=self.interventions,
            max_interventions=self.settings.max_interventions,
        )
        if decision is not None:
            self._act(decision, args, state, control, kw)

    def _mark_healthy(self, step: int, model: Any, optimizer: Any) -> None:
        self._healthy_step = step
        self._good_checkpoints += self._pending_checkpoints
        self._pending_checkpoints.clear()
        if self._use_snapshots and model is not None:
            self._snapshot = TrainableSnapshot(model, optimizer, step)

    def _restore(self, model: Any, optimizer: Any) -> tuple[int, str] | None:
        """Restore the latest healthy state: (its step, "snapshot" or the checkpoint path), or None."""
        if model is None:
            return None
        if self._snapshot is not None:
            self._snapshot.restore(model, optimizer)
            restored = (self._snapshot.step, "snapshot")
        else:
            usable = [(s, p) for s, p in self._good_checkpoints if (p / "trainer_state.json").is_file()]
            if not usable or not load_checkpoint_state(model, optimizer, usable[-1][1]):
                return None
            restored = (usable[-1][0], str(usable[-1][1]))
        self._last_sample = self._probe.sample() if self._probe is not None else None
        return restored

    def _act(
        self,
        decision: Decision,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        kw: dict[str, Any],
    ) -> None:
        model, optimizer, scheduler = kw.get("model"), kw.get("optimizer"), kw.get("lr_scheduler")
        finding, action, step = decision.finding, decision.action, state.global_step
        numbers = dict(finding.numbers)
        if finding.rule == "grad_norm":
            numbers["max_grad_norm"] = self._max_grad_norm
        field = "overfit_action" if finding.rule == "overfitting" else f"{finding.rule}_action"
        details: dict[str, Any] = {"escalated": decision.escalated, "field": field}
        details.update(n=self.interventions, limit=self.settings.max_interventions)
        restored = None
        if action == "rollback" or (action == "stop" and finding.rule in _BREAKS_WEIGHTS):
            restored = self._restore(model, optimizer)
            if restored is None and numbers.get("weights_finite") is False:
                action = "stop"  # broken weights and nothing to restore: going on is pointless
        if restored is not None:
            details["restored"], details["source"] = restored
        if action in INTERVENTIONS and optimizer is not None:
            details["old"], details["new"] = scale_learning_rate(optimizer, scheduler, 0.5)
            self.interventions += 1
        if action == "stop":
            control.should_save = True
            control.should_training_stop = True
            self._stop_step = step
            details["checkpoint"] = str(Path(args.output_dir) / f"checkpoint-{step}")
        fired = [finding.rule, *(f.rule for f in decision.others)]
        if action == "warn":
            # a warning repeats only on growing evidence: each repeat of a rule waits twice as long
            for rule in fired:
                n = self._warnings[rule] = self._warnings.get(rule, 0) + 1
                hold = (2 ** (n - 1) - 1) * self.settings.window * args.logging_steps
                self.history.quiet([rule], step + hold)
        else:
            self.history.quiet(list(self.settings.rule_actions()), step)
        self._report(finding, numbers, action, details, decision.others)

    def _report(
        self,
        finding: Finding,
        numbers: dict[str, Any],
        action: str,
        details: dict[str, Any],
        others: tuple[Finding, ...],
    ) -> None:
        def message(lang: str) -> str:
            what = describe_health(
                finding.rule, finding.step, numbers, learning_rate=self.learning_rate, lang=lang
            )
            return f"{what} {describe_action(action, lang, **details)}"

        shown = message(self.lang)
        if action == "stop":
            self.stop_reason = shown
        self._say(f"{text('prefix', self.lang)}: {shown}")
        renamed = {"old": "learning_rate", "new": "new_learning_rate", "restored": "restored_step"}
        data = {renamed.get(k, k): v for k, v in details.items() if k in (*renamed, "source", "checkpoint")}
        self.run.write_event(
            self.kind,
            message("en"),
            message_zh=message("zh"),  # the web UI shows it in Chinese without the train package
            rule=finding.rule,
            step=finding.step,
            action=action,
            escalated=details["escalated"],
            numbers=numbers,
            also=[{"rule": f.rule, "numbers": f.numbers} for f in others],
            **data,
        )

    def _say(self, message: str) -> None:
        if not is_writer():
            return
        if self.console is None:
            from rich.console import Console

            self.console = Console(stderr=True)
        self.console.print(message, markup=False, highlight=False)

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        self._training = False
        self._snapshot = None  # free the host copy

    # checkpoints --------------------------------------------------------------------------------
    def on_save(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        path = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if self._stop_step == state.global_step:
            self.stop_checkpoint = path
            self._say(f"{text('prefix', self.lang)}: {text('saved', self.lang, checkpoint=path)}")
        elif state.global_step == self._healthy_step:
            self._good_checkpoints.append((state.global_step, path))
        else:
            self._pending_checkpoints.append((state.global_step, path))
