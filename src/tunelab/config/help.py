"""Plain-text listing of every config key with its default and help, in English or Chinese."""

from __future__ import annotations

from tunelab.config.control import NESTED_GROUP_TYPES
from tunelab.config.fields import help_text
from tunelab.config.schema import GROUP_TYPES

__all__ = ["format_key_help"]

_GROUP_TITLES = {
    "model": ("model", "模型"),
    "data": ("data", "数据"),
    "finetuning": ("finetuning", "微调方法"),
    "training": ("training", "训练"),
    "generation": ("generation", "生成"),
    "output": ("output", "输出"),
    "export": ("export (tunelab export)", "导出（tunelab export）"),
    "eval": ("eval (tunelab eval)", "评估（tunelab eval）"),
    "preference": ("preference (stages rm, dpo, kto, ppo)", "偏好训练（rm、dpo、kto、ppo 阶段）"),
    "kd": ("kd (stage kd, knowledge distillation)", "知识蒸馏（kd 阶段）"),
    "health": ("health (health.<key>=...)", "健康监控（health.<键>=...）"),
    "early_stopping": ("early_stopping (early_stopping.<key>=...)", "早停（early_stopping.<键>=...）"),
    "tune": (
        "tune (tune.<key>=..., for tunelab tune / sweep)",
        "超参数搜索（tune.<键>=...，用于 tunelab tune / sweep）",
    ),
}


def format_key_help(lang: str = "en") -> str:
    """Every key, grouped, as `key (default): help` lines: the source for `--help-keys`."""
    lines: list[str] = []
    for group, model in {**GROUP_TYPES, **NESTED_GROUP_TYPES}.items():
        en, zh = _GROUP_TITLES[group]
        prefix = f"{group}." if group in NESTED_GROUP_TYPES else ""
        lines.append(f"### {zh if lang == 'zh' else en}")
        for name, info in model.model_fields.items():
            default = "required" if info.is_required() else repr(info.default)
            lines.append(f"  {prefix}{name} ({default}): {help_text(model, name, lang)}")
        lines.append("")
    return "\n".join(lines)
