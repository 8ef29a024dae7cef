"""`tunelab lr-find`: the learning-rate range test (Smith 2017; the fastai ``lr_find``).

Train for ``num_steps`` optimizer steps while the learning rate grows exponentially from ``start_lr``
to ``end_lr``; record the loss and stop when its running average (an exponential moving average with
bias correction) exceeds ``diverge_factor`` x its minimum. The curve is then smoothed with a centred
window (the running average lags by ~1/(1-beta) steps, several decades of learning rate, which would
push every reading to the right) and two readings are taken, as fastai does: the learning rate of the
steepest descent against log(lr), and a tenth of the learning rate at the minimum. The reported
suggestion is the middle of the descending stretch between those landmarks — the geometric mean of the
steepest-descent and the minimum learning rates — because tunelab's schedules warm up to a peak and
decay, the use Smith's one-cycle guidance ("just before the loss stops falling") was made for; the
minimum/10 reading, meant for a constant learning rate, sat about 10x below the sweep-best learning
rate in our benchmark (`benchmarks/lr_find_quality.py`, docs/benchmarks.md).

The test runs on its own copy of the model (loaded from the config, as training would) with a fresh
optimizer, and puts the trainable weights back afterwards; `lr_range_test` does the same for a model
passed in, so a caller's weights are untouched.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunelab.config import RunConfig
from tunelab.errors import ConfigError

__all__ = [
    "LRFindResult",
    "lr_find",
    "lr_range_test",
    "plot_lr_find",
    "smooth_losses",
    "suggest_learning_rates",
]

_SKIP_START = 10  # the first steps' slope is noise (fastai skips 10)
_SKIP_END = 5  # the last steps before divergence bend upwards (fastai skips 5)


@dataclass
class LRFindResult:
    """The curve of the range test and what was read off it."""

    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    suggestions: dict[str, float]
    suggestion: float
    method: str
    diverged: bool
    n_steps: int
    info: dict[str, Any] = field(default_factory=dict)
    plot_path: Path | None = None
    json_path: Path | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "suggestion": self.suggestion,
            "method": self.method,
            "suggestions": self.suggestions,
            "diverged": self.diverged,
            "n_steps": self.n_steps,
            "lrs": self.lrs,
            "losses": self.losses,
            "smoothed": self.smoothed,
            **self.info,
        }


def smooth_losses(losses: Sequence[float], beta: float = 0.98) -> list[float]:
    """Exponential moving average of ``losses`` with bias correction (the start is not pulled to 0)."""
    out, avg = [], 0.0
    for i, loss in enumerate(losses, start=1):
        avg = beta * avg + (1 - beta) * loss
        out.append(avg / (1 - beta**i))
    return out


def smooth_centered(losses: Sequence[float], half_width: int) -> list[float]:
    """Triangular-weighted moving average centred on each point (no lag; shorter windows at the ends)."""
    out = []
    n = len(losses)
    for i in range(n):
        width = min(half_width, i, n - 1 - i)
        weights = [width + 1 - abs(k) for k in range(-width, width + 1)]
        values = losses[i - width : i + width + 1]
        out.append(sum(w * v for w, v in zip(weights, values)) / sum(weights))
    return out


def suggest_learning_rates(lrs: Sequence[float], smoothed: Sequence[float]) -> dict[str, float]:
    """{'steepest': lr of the steepest smoothed-loss descent, 'min_div_10': lr at the minimum / 10}."""
    if len(lrs) < 3:
        raise ConfigError(
            f"the range test recorded only {len(lrs)} steps, too few to read a suggestion",
            "raise --steps (100 is typical) or lower --start-lr",
        )
    best = min(range(len(smoothed)), key=smoothed.__getitem__)
    # steepest descent on the part before the minimum, skipping the noisy start when there is room
    end = max(best, 2)
    start = _SKIP_START if end - _SKIP_START >= 3 else 0
    logs = [math.log10(lr) for lr in lrs[: end + 1]]
    slopes = []
    for i in range(start, end):
        left, right = max(i - 1, 0), min(i + 1, end)
        slopes.append(((smoothed[right] - smoothed[left]) / (logs[right] - logs[left]), i))
    steepest = min(slopes)[1]
    return {"steepest": lrs[steepest], "min_div_10": lrs[best] / 10, "minimum": lrs[best]}


def combined_suggestion(suggestions: dict[str, float]) -> float:
    """The reported suggestion: the middle (geometric mean) of the descending stretch, from the steepest
    descent to the minimum (see the module docstring)."""
    return math.sqrt(suggestions["steepest"] * suggestions["minimum"])


def lr_range_test(
    model: Any,
    optimizer: Any,
    step: Callable[[int], float],
    *,
    start_lr: float = 1e-7,
    end_lr: float = 1.0,
    num_steps: int = 100,
    beta: float = 0.98,
    diverge_factor: float = 4.0,
    progress: Callable[[int, float, float], None] | None = None,
) -> tuple[list[float], list[float], list[float], bool]:
    """Run the ramp; ``step(i)`` runs forward/backward/optimizer step number ``i`` and returns its loss.

    Sets every parameter group's learning rate (keeping the groups' ratios, e.g. LoRA+) before each
    step. The model's trainable weights are copied before and restored after, also on errors.
    Returns (learning rates, losses, smoothed losses, diverged).
    """
    import torch

    if not 0 < start_lr < end_lr:
        raise ConfigError(
            f"--start-lr {start_lr} / --end-lr {end_lr}: need 0 < start < end", "e.g. 1e-7 and 1"
        )
    if num_steps < 5:
        raise ConfigError(
            f"--steps {num_steps} is too few for a range test", "use 50-200 steps (100 is typical)"
        )
    saved = {name: p.detach().to("cpu", copy=True) for name, p in model.named_parameters() if p.requires_grad}
    base = [group["lr"] for group in optimizer.param_groups]
    ratios = [lr / base[0] if base[0] else 1.0 for lr in base]
    growth = (end_lr / start_lr) ** (1 / (num_steps - 1))
    lrs: list[float] = []
    losses: list[float] = []
    smoothed: list[float] = []
    diverged = False
    try:
        with torch.random.fork_rng(devices=[]):
            for i in range(num_steps):
                lr = start_lr * growth**i
                for group, ratio in zip(optimizer.param_groups, ratios):
                    group["lr"] = lr * ratio
                loss = step(i)
                lrs.append(lr)
                losses.append(loss)
                smoothed = smooth_losses(losses, beta)
                if progress is not None:
                    progress(i, lr, smoothed[-1])
                if not math.isfinite(loss) or (
                    i >= _SKIP_START and smoothed[-1] > diverge_factor * min(smoothed)
                ):
                    diverged = True
                    break
    finally:
        with torch.no_grad():
            params = dict(model.named_parameters())
            for name, value in saved.items():
                params[name].copy_(value)
        for group, lr in zip(optimizer.param_groups, base):
            group["lr"] = lr
        optimizer.zero_grad(set_to_none=True)
    if diverged and losses and not math.isfinite(losses[-1]):  # a NaN step says nothing about the curve
        lrs, losses, smoothed = lrs[:-1], losses[:-1], smoothed[:-1]
    return lrs, losses, smoothed, diverged


def lr_find(
    config: RunConfig,
    *,
    start_lr: float = 1e-7,
    end_lr: float = 1.0,
    num_steps: int = 100,
    output_dir: str | Path | None = None,
    console: Any = None,
) -> LRFindResult:
    """Run the range test for ``config`` (its model, method, precision and effective batch).

    Each step uses ``gradient_accumulation_steps`` micro-batches of ``per_device_train_batch_size``
    rows drawn from the training data, so the suggestion belongs to the config's effective batch.
    Writes lr_find.png and lr_find.json into ``output_dir`` (default runs/lr-find-<time>).
    """
    from tunelab.tune.probe import TrainingProbe

    probe = TrainingProbe(config)
    t = config.training
    accum = t.gradient_accumulation_steps
    batches = probe.sample_batches(t.per_device_train_batch_size, num_steps * accum, seed=t.seed)

    def step(i: int) -> float:
        total = 0.0
        for k in range(accum):
            total += probe.forward_backward(batches[i * accum + k], scale=1.0 / accum)
        probe.optimizer_step()
        return total / accum

    status = console.status("LR range test ...") if console is not None else None

    def progress(i: int, lr: float, loss: float) -> None:
        if status is not None:
            status.update(f"LR range test: step {i + 1}/{num_steps}, lr {lr:.2e}, smoothed loss {loss:.4f}")

    if status is not None:
        status.start()
    try:
        lrs, losses, smoothed, diverged = lr_range_test(
            probe.model,
            probe.optimizer,
            step,
            start_lr=start_lr,
            end_lr=end_lr,
            num_steps=num_steps,
            progress=progress,
        )
    finally:
        if status is not None:
            status.stop()
    # The online EMA lags by ~1/(1-beta) steps (50 here: 3.5 decades of learning rate), fine for spotting
    # divergence but not for reading a learning rate off the curve: that uses a centred smoother.
    ema = smoothed
    smoothed = smooth_centered(losses, max(2, len(losses) // 20))
    suggestions = suggest_learning_rates(lrs, smoothed)
    result = LRFindResult(
        lrs=lrs,
        losses=losses,
        smoothed=smoothed,
        suggestions=suggestions,
        suggestion=float(f"{combined_suggestion(suggestions):.2g}"),
        method="geometric mean of the steepest-descent and minimum learning rates",
        diverged=diverged,
        n_steps=len(lrs),
        info={
            "model": config.model.model_name_or_path,
            "finetuning_type": config.finetuning.finetuning_type,
            "micro_batch": t.per_device_train_batch_size,
            "gradient_accumulation_steps": accum,
            "optimizer": t.optim,
            "start_lr": start_lr,
            "end_lr": end_lr,
            "ema": ema,
        },
    )
    out = Path(output_dir) if output_dir else Path("runs") / f"lr-find-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    result.json_path = out / "lr_find.json"
    result.json_path.write_text(json.dumps(result.as_dict(), indent=2) + "\n", encoding="utf-8")
    result.plot_path = plot_lr_find(result, out / "lr_find.png")
    return result


def plot_lr_find(result: LRFindResult, path: Path, *, lang: str | None = None) -> Path:
    """Loss against learning rate (log scale), raw and smoothed, with the suggestions marked.

    Texts in ``lang`` (default: the running command's language, see tunelab.runs.plot_texts).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tunelab.runs.fonts import use_cjk_fallback
    from tunelab.runs.plot_texts import plot_lang, plot_text

    use_cjk_fallback()  # Chinese labels render instead of boxes
    lang = plot_lang(lang)

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    ax.plot(
        result.lrs, result.losses, color="tab:blue", alpha=0.3, linewidth=1, label=plot_text("loss", lang)
    )
    ax.plot(
        result.lrs, result.smoothed, color="tab:blue", linewidth=2, label=plot_text("smoothed_loss", lang)
    )
    ax.set_xscale("log")
    marks = [
        (result.suggestions["steepest"], "tab:orange", plot_text("steepest", lang)),
        (result.suggestions["minimum"], "tab:purple", plot_text("minimum", lang)),
        (result.suggestions["min_div_10"], "tab:green", plot_text("min_div_10", lang)),
    ]
    for lr, color, label in marks:
        ax.axvline(lr, color=color, linestyle="--", linewidth=1, label=f"{label}: {lr:.1e}")
    y = _interpolate(result.lrs, result.smoothed, result.suggestion)
    ax.plot(
        [result.suggestion],
        [y],
        "o",
        color="tab:red",
        markersize=8,
        label=f"{plot_text('suggestion', lang)}: {result.suggestion:.1e}",
    )
    finite = [v for v in result.smoothed if math.isfinite(v)]
    if finite:  # keep the divergence tail from flattening the interesting part
        low, high = min(finite), min(max(finite), 2 * min(finite) + 1e-9)
        ax.set_ylim(low - 0.05 * (high - low) - 1e-9, high + 0.05 * (high - low) + 1e-9)
    ax.set_xlabel(plot_text("learning_rate", lang))
    ax.set_ylabel(plot_text("training_loss", lang))
    ax.set_title(plot_text("lr_range_test", lang))
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
    return path


def _interpolate(xs: Sequence[float], ys: Sequence[float], x: float) -> float:
    """ys at x on a log-x scale (clamped to the ends)."""
    if x <= xs[0]:
        return ys[0]
    for (x0, y0), (x1, y1) in zip(zip(xs, ys), zip(xs[1:], ys[1:])):
        if x0 <= x <= x1:
            w = (math.log(x) - math.log(x0)) / (math.log(x1) - math.log(x0))
            return y0 + w * (y1 - y0)
    return ys[-1]
