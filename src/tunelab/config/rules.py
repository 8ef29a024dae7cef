"""Rules that span config groups, as plain functions over a built RunConfig (no torch import).

They used to run in the trainer builders, the schedule and the optimizer, i.e. after the model had
loaded; :func:`tunelab.config.validate.validate` now runs them where the config is built, and those
builders call the same functions as a last guard for configs built in Python.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tunelab.config.schema import ADAPTER_TYPES

if TYPE_CHECKING:
    from tunelab.config.run_config import RunConfig
    from tunelab.config.schema_train import TrainingArgs

__all__ = [
    "STAGE_EVAL_METRICS",
    "ConfigProblems",
    "Problem",
    "command_problems",
    "config_problems",
    "eval_save_problems",
    "method_problems",
    "training_problems",
]

# what each stage's evaluation reports (without the eval_ prefix): metric_for_best_model must be one
STAGE_EVAL_METRICS: dict[str, tuple[str, ...]] = {
    "pt": ("loss",),
    "sft": ("loss",),
    "rm": ("loss", "accuracy", "margin"),
    "dpo": ("loss", "rewards/accuracies", "rewards/margins", "rewards/chosen", "rewards/rejected"),
    "kto": ("loss", "rewards/margins", "rewards/chosen", "rewards/rejected", "kl"),
    "ppo": ("reward", "kl"),
    "cls": ("loss", "accuracy", "precision_macro", "recall_macro", "f1_macro"),
}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a config: the key to blame (for its file line), what, and the fix."""

    key: str | None
    message: str
    hint: str = ""
    # names the message for a translated rendering (tunelab.error_texts); params fill it
    code: str = field(default="", compare=False)
    params: Mapping[str, Any] = field(default_factory=dict, compare=False)


class ConfigProblems(ValueError):
    """Raised by a model validator with several problems, so that each is reported on its own line."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = list(problems)


def eval_save_problems(config: RunConfig, eval_metrics: Sequence[str] | None = None) -> list[Problem]:
    """Every evaluation/saving setting that cannot work together (``eval_metrics``: the stage's)."""
    t, o, d = config.training, config.output, config.data
    if eval_metrics is None:
        eval_metrics = STAGE_EVAL_METRICS.get(config.finetuning.stage, ("loss",))
    evaluates = t.eval_strategy != "no"
    problems: list[Problem] = []
    if evaluates and not d.eval_dataset and d.val_size == 0:
        problems.append(Problem(
            "eval_strategy",
            f"eval_strategy={t.eval_strategy} needs evaluation data, but val_size=0 and eval_dataset is unset",
            "set val_size (e.g. val_size=0.1) or eval_dataset=<dataset name>, or eval_strategy=no",
        ))  # fmt: skip
    if t.load_best_model_at_end and not evaluates:
        problems.append(Problem(
            "load_best_model_at_end",
            "load_best_model_at_end=true needs evaluations to pick the best checkpoint, but eval_strategy=no",
            f"set eval_strategy={o.save_strategy} (with val_size or eval_dataset), or load_best_model_at_end=false",
        ))  # fmt: skip
    if t.load_best_model_at_end and evaluates and o.save_strategy != t.eval_strategy:
        problems.append(Problem(
            "load_best_model_at_end",
            f"load_best_model_at_end=true needs a checkpoint at every evaluation, but "
            f"save_strategy={o.save_strategy} and eval_strategy={t.eval_strategy}",
            f"set save_strategy={t.eval_strategy} (or eval_strategy={o.save_strategy})",
        ))  # fmt: skip
    eval_steps = t.eval_steps or o.logging_steps
    if (
        t.load_best_model_at_end
        and t.eval_strategy == "steps" == o.save_strategy
        and o.save_steps % eval_steps
    ):
        source = "eval_steps" if t.eval_steps else "eval_steps (unset: logging_steps)"
        divisor = max(n for n in range(1, eval_steps + 1) if o.save_steps % n == 0)
        problems.append(Problem(
            "save_steps",
            f"load_best_model_at_end=true needs save_steps ({o.save_steps}) to be a multiple of "
            f"{source} ({eval_steps}), so that every evaluation has a checkpoint to return to",
            f"set eval_steps={divisor} or save_steps={-(-o.save_steps // eval_steps) * eval_steps}",
        ))  # fmt: skip
    if t.lr_scheduler_type == "reduce_lr_on_plateau" and not evaluates:
        problems.append(Problem(
            "lr_scheduler_type",
            "lr_scheduler_type=reduce_lr_on_plateau reacts to evaluations, but eval_strategy=no",
            "set eval_strategy=steps (with val_size or eval_dataset), or choose another lr_scheduler_type",
        ))  # fmt: skip
    if evaluates and t.metric_for_best_model.removeprefix("eval_") not in eval_metrics:
        problems.append(Problem(
            "metric_for_best_model",
            f"metric_for_best_model={t.metric_for_best_model}: the {config.finetuning.stage} stage's "
            "evaluation does not report it",
            f"use one of: {', '.join(f'eval_{m}' for m in eval_metrics)} "
            "(eval_loss ranks checkpoints as perplexity does)",
        ))  # fmt: skip
    return problems


def training_problems(t: TrainingArgs) -> list[Problem]:
    """Contradictions inside the optimiser/schedule settings (the optimizer and schedule also check)."""
    problems = []
    if t.optim == "sgd" and t.sgd_nesterov and t.sgd_momentum <= 0:
        problems.append(Problem(
            "sgd_nesterov",
            f"sgd_nesterov=true needs sgd_momentum > 0 (got sgd_momentum={t.sgd_momentum})",
            "set sgd_momentum=0.9, or sgd_nesterov=false",
        ))  # fmt: skip
    if t.lr_scheduler_type == "polynomial" and t.lr_end >= t.learning_rate:
        problems.append(Problem(
            "lr_end",
            f"lr_end={t.lr_end} must be below learning_rate={t.learning_rate} for polynomial decay",
            "lower lr_end (default 1e-7) or raise learning_rate",
        ))  # fmt: skip
    return problems


def method_problems(config: RunConfig) -> list[Problem]:
    """LoRA-only settings with another finetuning_type (the adapter and optimizer code refuse them later)."""
    f, kind = config.finetuning, config.finetuning.finetuning_type
    if kind == "lora":
        return []
    problems = []
    if config.model.adapter_name_or_path and kind not in ADAPTER_TYPES:  # an OFT run loads its OFT adapter
        problems.append(Problem(
            "adapter_name_or_path", f"adapter_name_or_path is set but finetuning_type={kind}",
            "use finetuning_type: lora (or oft) to continue training an adapter, or drop adapter_name_or_path",
        ))  # fmt: skip
    for key in ("loraplus_lr_ratio", "use_rslora", "use_dora", "pissa_init"):
        if getattr(f, key) not in (None, False):
            problems.append(Problem(
                key, f"{key} only applies to LoRA, but finetuning_type={kind}",
                f"set finetuning_type: lora, or remove {key}",
            ))  # fmt: skip
    return problems


def config_problems(config: RunConfig) -> list[Problem]:
    """Every cross-group rule of a built config, in one list (empty when the config can run)."""
    problems = eval_save_problems(config) + training_problems(config.training)
    t, d = config.training, config.data
    if config.early_stopping.enabled and t.eval_strategy == "no":
        problems.append(Problem(
            "early_stopping",
            "early_stopping.enabled=true needs evaluations, but eval_strategy=no",
            "set eval_strategy=steps with eval_steps=N (and val_size > 0 or eval_dataset), "
            "or early_stopping.enabled=false",
        ))  # fmt: skip
    problems += method_problems(config)
    if config.eval.eval_split == "test" and d.test_size == 0:
        problems.append(Problem(
            "eval_split", "eval_split=test but the config holds out no test split",
            "set test_size (e.g. 0.1; needs dataset), or eval_split=eval",
        ))  # fmt: skip
    for key in ("do_eval", "do_predict"):
        if getattr(t, key) and not d.eval_dataset and d.val_size == 0 and d.test_size == 0:
            problems.append(Problem(
                key,
                f"{key}=true evaluates on the evaluation split, but val_size=0 and eval_dataset is unset",
                "set val_size (e.g. val_size=0.1) or eval_dataset=<dataset name>",
            ))  # fmt: skip
    if t.do_eval and config.finetuning.stage not in ("pt", "sft", "cls"):
        problems.append(Problem(
            "do_eval",
            f"do_eval=true measures pt/sft/cls runs; stage {config.finetuning.stage} evaluates during training",
            "set eval_strategy=steps with val_size (its evaluation metrics go to metrics.json), or remove do_eval",
        ))  # fmt: skip
    if d.tokenized_path and config.finetuning.stage not in ("pt", "sft"):
        problems.append(Problem(
            "tokenized_path",
            f"tokenized_path saves/reuses the datasets of stages pt and sft, not {config.finetuning.stage}",
            "remove tokenized_path (the preference and cls stages tokenize in memory)",
        ))  # fmt: skip
    if t.do_predict and not config.eval.predict_with_generate:
        problems.append(Problem(
            "do_predict",
            "do_predict=true generates answers only with predict_with_generate=true (as in LLaMA-Factory)",
            "add predict_with_generate: true",
        ))  # fmt: skip
    if not t.do_train and not (t.do_eval or t.do_predict):
        problems.append(Problem(
            "do_train", "do_train=false with neither do_eval nor do_predict leaves nothing to do",
            "set do_train: true, or do_predict: true with predict_with_generate: true",
        ))  # fmt: skip
    return problems


def command_problems(config: RunConfig, command: str) -> list[Problem]:
    """What ``command`` ('train' or 'eval') needs beyond a valid config, e.g. data to train on.

    Kept apart from :func:`config_problems` because the same config also serves chat, api and
    export, which need no dataset.
    """
    d, t = config.data, config.training
    if command == "train" and t.do_train and not d.dataset:
        return [Problem("dataset", "training needs a dataset, but 'dataset' is empty",
                        "set dataset: <name in dataset_dir/dataset_info.json, or a data file path>",
                        code="no_train_dataset")]  # fmt: skip
    if command == "eval" and not (d.dataset or d.eval_dataset or config.eval.task):
        return [Problem("dataset", "nothing to evaluate: dataset, eval_dataset and task are all empty",
                        "set eval_dataset=<name>, dataset=<name> with val_size, or task=<benchmark>",
                        code="no_eval_data")]  # fmt: skip
    return []
