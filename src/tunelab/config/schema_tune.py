"""The nested ``tune:`` group: the search space and budget of `tunelab tune` and `tunelab sweep`.

A study is many runs of one config; this group says which keys vary, over which ranges, and how
the runs are ranked. Training ignores it. Written as a YAML mapping or dotted overrides
(``tune.n_trials=30``, ``tune.space={learning_rate: {low: 1e-5, high: 1e-3, log: true}}``).
"""

from __future__ import annotations

import difflib
import math
from typing import Any, Literal

from pydantic import field_validator, model_serializer, model_validator

from tunelab.config.fields import Group, field

__all__ = ["DERIVED_PARAMS", "ParamSpec", "TuneArgs"]

# Search parameters that are not config keys themselves but set one from another.
DERIVED_PARAMS: dict[str, tuple[str, str]] = {
    "lora_alpha_ratio": (
        "lora_alpha = lora_alpha_ratio x lora_rank (searching the ratio keeps the LoRA scale comparable across ranks)",
        "lora_alpha = lora_alpha_ratio × lora_rank（搜索比例可使不同秩下的 LoRA 缩放保持可比）",
    ),
}


class ParamSpec(Group):
    """One searched parameter: a list of ``choices``, or a ``low``-``high`` range (``log``, ``step``).

    In YAML a plain list is short for ``{choices: [...]}``.
    """

    choices: list[Any] | None = field(
        None, en="Values to choose from (any type).", zh="可选取的取值列表（任意类型）。"
    )
    low: float | None = field(None, en="Lower end of a numeric range.", zh="数值范围的下限。")
    high: float | None = field(None, en="Upper end of a numeric range.", zh="数值范围的上限。")
    log: bool = field(
        False,
        en="Sample the range on a log scale (learning rates, weight decay).",
        zh="在对数尺度上采样（学习率、权重衰减等）。",
    )
    step: float | None = field(None, en="Spacing of a discretised range.", zh="离散化范围的步长。", gt=0)

    @model_serializer(mode="plain")
    def _compact(self) -> Any:
        """Dump as the user writes it: a plain list, or only the range keys that are set."""
        if self.choices is not None:
            return list(self.choices)
        out: dict[str, Any] = {"low": self.low, "high": self.high}
        if self.log:
            out["log"] = True
        if self.step is not None:
            out["step"] = self.step
        return out

    @model_validator(mode="after")
    def _check_shape(self) -> ParamSpec:
        if self.choices is not None:
            if not self.choices:
                raise ValueError("choices is empty; list at least one value")
            if self.low is not None or self.high is not None:
                raise ValueError("give either choices or low/high, not both")
            return self
        if self.low is None or self.high is None:
            raise ValueError("give choices: [...] or both low and high")
        if not (math.isfinite(self.low) and math.isfinite(self.high)) or self.low > self.high:
            raise ValueError(f"low={self.low} must be <= high={self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"log=true needs low > 0 (got {self.low})")
        if self.log and self.step is not None:
            raise ValueError("log=true and step cannot be combined")
        return self


def _as_spec(value: Any) -> Any:
    return {"choices": value} if isinstance(value, (list, tuple)) else value


class TuneArgs(Group):
    """Search space, objective, sampler, pruner, budget and storage of a hyperparameter study."""

    space: dict[str, ParamSpec] = field(
        {},
        en="Parameters to search: config key -> {low, high, log, step} or a list of choices "
        "(also lora_alpha_ratio). Empty: a default space built from the config "
        "(`tunelab tune CFG --show-space`).",
        zh="要搜索的参数：配置键 -> {low, high, log, step} 或取值列表（另支持 lora_alpha_ratio）。"
        "留空则按配置生成默认搜索空间（`tunelab tune CFG --show-space` 查看）。",
    )
    n_trials: int = field(
        20,
        en="Trials the study should hold in total; running again with a larger number continues it.",
        zh="研究总共应包含的试验数；用更大的数再次运行即可在原研究上继续。",
        gt=0,
    )
    timeout: float | None = field(
        None,
        en="Stop starting new trials after this many seconds (the running trial finishes).",
        zh="超过该秒数后不再开始新试验（正在运行的试验会跑完）。",
        gt=0,
    )
    metric: str = field(
        "eval_loss",
        en="Metric of metrics.json to optimise (eval_loss, eval_accuracy, train_loss, ...).",
        zh="要优化的 metrics.json 指标（eval_loss、eval_accuracy、train_loss 等）。",
    )
    direction: Literal["auto", "minimize", "maximize"] = field(
        "auto",
        en="minimize or maximize the metric; auto: minimize losses and perplexity, maximize the rest.",
        zh="最小化或最大化该指标；auto：损失和困惑度取最小化，其余取最大化。",
    )
    sampler: Literal["tpe", "random", "grid", "cmaes"] = field(
        "tpe",
        en="Optuna sampler: tpe (Bayesian, default), random, grid (ranges become low/middle/high), "
        "cmaes (continuous parameters).",
        zh="Optuna 采样器：tpe（贝叶斯，默认）、random、grid（范围取低/中/高三点）、cmaes（连续参数）。",
    )
    pruner: Literal["median", "successive_halving", "hyperband", "none"] = field(
        "median",
        en="Stop unpromising trials early from their evaluations: median, successive_halving, hyperband "
        "or none.",
        zh="依据中间评估结果提前终止没有希望的试验：median、successive_halving、hyperband 或 none。",
    )
    prune_startup_trials: int = field(
        3,
        en="median pruner: trials that must finish before any trial is pruned.",
        zh="median 剪枝器：开始剪枝前必须完成的试验数。",
        ge=0,
    )
    prune_warmup_steps: int = field(
        0,
        en="Optimizer steps a trial runs before it may be pruned.",
        zh="试验在可被剪枝前至少运行的优化步数。",
        ge=0,
    )
    baseline_first: bool = field(
        True,
        en="Make the first trial of a new study use the config's own values (those inside the space), so "
        "the study starts from your setting.",
        zh="新研究的第一个试验使用配置本身的取值（在搜索空间内的部分），让研究从你的设置出发。",
    )
    enqueue: list[dict[str, Any]] = field(
        [],
        en="Parameter sets to try first (known-good settings), before the sampler takes over.",
        zh="在采样器接手前优先尝试的参数组合（已知较好的设置）。",
    )
    storage: str | None = field(
        None,
        en="Optuna storage URL; unset: sqlite:///<study dir>/study.db. A PostgreSQL/MySQL URL lets workers "
        "on several machines share one study.",
        zh="Optuna 存储 URL；未设置时为 sqlite:///<研究目录>/study.db。使用 PostgreSQL/MySQL URL 可让多台机器上的"
        "工作进程共享同一研究。",
    )
    study_name: str | None = field(
        None,
        en="Study name in the storage; unset: the study directory's name.",
        zh="存储中的研究名称；未设置时为研究目录名。",
    )
    n_workers: int = field(
        1,
        en="Local worker processes running trials in parallel (they share the storage).",
        zh="并行运行试验的本地工作进程数（共享同一存储）。",
        gt=0,
    )
    seed: int | None = field(
        None, en="Sampler seed; unset: the config's seed.", zh="采样器随机种子；未设置时使用配置的 seed。"
    )

    @field_validator("space", mode="before")
    @classmethod
    def _lists_are_choices(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {key: _as_spec(spec) for key, spec in value.items()}
        return value

    @model_validator(mode="after")
    def _check_space_keys(self) -> TuneArgs:
        from tunelab.config.run_config import KEY_TO_GROUP  # imported late: run_config imports this module

        flat = [k for k, g in KEY_TO_GROUP.items() if k != g] + list(DERIVED_PARAMS)
        for params in [self.space, *self.enqueue]:
            for key in params:
                if key not in flat:
                    close = difflib.get_close_matches(key, flat, n=1, cutoff=0.6)
                    fix = (
                        f"did you mean '{close[0]}'?"
                        if close
                        else "search flat config keys such as learning_rate"
                    )
                    raise ValueError(f"unknown parameter {key!r} — {fix}")
        return self

    @property
    def lower_is_better(self) -> bool:
        """minimize, or auto on a loss/perplexity metric."""
        if self.direction != "auto":
            return self.direction == "minimize"
        return "loss" in self.metric or "perplexity" in self.metric
