"""Titles, axis labels and legend entries of tunelab's plots, in English and Chinese.

Plotting functions take ``lang``; left unset, they draw in the language of the command that runs
them (TUNELAB_LANG / LANG, as the training messages do), so a run started from the Chinese web UI
writes Chinese plots. Metric keys (eval_loss, rewards/chosen) stay as they are logged.
"""

from __future__ import annotations

from typing import Any

__all__ = ["OPTUNA_TEXTS", "PLOT_TEXTS", "plot_lang", "plot_text", "relabel_figure", "series_label"]

PLOT_TEXTS: dict[str, tuple[str, str]] = {
    "step": ("step", "步数"),
    "loss": ("loss", "损失"),
    "value": ("value", "数值"),
    "train": ("train", "训练"),
    "eval": ("eval", "评估"),
    "smoothed": ("smoothed", "平滑"),
    "learning_rate": ("learning rate", "学习率"),
    "training_loss": ("training loss", "训练损失"),
    "gradient_norm": ("gradient norm", "梯度范数"),
    "rewards": (
        "rewards (implicit for dpo/kto, reward-model scores for rm)",
        "奖励（dpo/kto 为隐式奖励，rm 为奖励模型打分）",
    ),
    "pref_accuracy": (
        "preference accuracy (chosen scored above rejected)",
        "偏好准确率（选中回复得分高于拒绝回复）",
    ),
    "ppo": (
        "ppo: mean reward of the generated responses and KL to the reference",
        "ppo：生成回复的平均奖励与相对参考模型的 KL",
    ),
    # lr-find
    "lr_range_test": ("LR range test", "学习率范围测试"),
    "smoothed_loss": ("smoothed loss", "平滑损失"),
    "steepest": ("steepest descent", "下降最快处"),
    "minimum": ("minimum", "最低点"),
    "min_div_10": ("minimum / 10", "最低点 / 10"),
    "suggestion": ("suggestion", "建议值"),
    # evaluate
    "benchmark": ("benchmark", "基准测试"),
    "overall": ("overall", "总体"),
    "accuracy_pct": ("accuracy (%)", "准确率（%）"),
    "scores": ("scores (higher is better)", "得分（越高越好）"),
    "losses": ("loss\n(lower is better)", "损失\n（越低越好）"),
    "before_after": ("before vs after", "训练前后对比"),
    "count": ("count", "数量"),
    "predicted": ("predicted label", "预测标签"),
    "true": ("true label", "真实标签"),
}

# Optuna's own plot texts (optuna.visualization.matplotlib) -> Chinese; a text not listed stays as drawn
OPTUNA_TEXTS: dict[str, str] = {
    "Optimization History Plot": "优化历史",
    "Intermediate Values Plot": "中间值",
    "Parallel Coordinate Plot": "平行坐标图",
    "Slice Plot": "切片图",
    "Hyperparameter Importances": "超参数重要性",
    "Objective Value": "目标值",
    "Best Value": "最佳值",
    "Trial": "试验",
    "#Trials": "试验编号",
    "Step": "步数",
    "Intermediate Value": "中间值",
    "Hyperparameter": "超参数",
    "Importance for Objective Value": "对目标值的重要性",
    "Infeasible Trial": "不可行试验",
}


def plot_lang(lang: str | None = None) -> str:
    """``lang``, or the running command's language (TUNELAB_LANG / LANG) when it is None."""
    if lang:
        return "zh" if lang == "zh" else "en"
    from tunelab.cli_text import cli_lang

    return cli_lang()


def plot_text(key: str, lang: str | None = None) -> str:
    """The plot text ``key`` in ``lang`` (see :func:`plot_lang`)."""
    en, zh = PLOT_TEXTS[key]
    return zh if plot_lang(lang) == "zh" else en


def series_label(name: str, lang: str | None = None) -> str:
    """A curve's legend entry: 'train', 'eval', 'train (smoothed)', '<run> eval' ... in ``lang``."""
    if plot_lang(lang) != "zh":
        return name
    smoothed = name.endswith(" (smoothed)")
    base = name.removesuffix(" (smoothed)")
    head, _, last = base.rpartition(" ")
    words = {"train": "train", "eval": "eval", "learning rate": "learning_rate"}
    if base in words:
        base = plot_text(words[base], "zh")
    elif last in words:
        base = f"{head} {plot_text(words[last], 'zh')}"
    return base + (f"（{plot_text('smoothed', 'zh')}）" if smoothed else "")


def relabel_figure(fig: Any, texts: dict[str, str]) -> None:
    """Replace the titles, axis labels and legend entries of ``fig`` found in ``texts`` (a library's plots)."""
    for text in fig.findobj(lambda artist: hasattr(artist, "get_text") and hasattr(artist, "set_text")):
        shown = text.get_text()
        if shown in texts:
            text.set_text(texts[shown])
