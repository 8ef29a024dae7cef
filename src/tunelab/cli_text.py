"""CLI help texts in English and Chinese; the language comes from TUNELAB_LANG or LANG.

Kept apart from cli.py so the command layer stays thin and the texts can be checked for
completeness (every key has both languages) by a test.
"""

from __future__ import annotations

import os

__all__ = ["TEXTS", "cli_lang", "t"]

TEXTS: dict[str, dict[str, str]] = {
    "app": {
        "en": "tunelab: fine-tune language models with hyperparameters chosen from evidence.",
        "zh": "tunelab：用有依据的超参数微调大语言模型。",
    },
    "train": {
        "en": "Train a model from a YAML config; add key=value overrides after it "
        "(e.g. tunelab train cfg.yaml learning_rate=5e-5 lora_rank=16).",
        "zh": "按 YAML 配置训练模型；可在其后追加 key=value 覆盖项"
        "（如 tunelab train cfg.yaml learning_rate=5e-5 lora_rank=16）。",
    },
    "train.config": {"en": "YAML config file.", "zh": "YAML 配置文件。"},
    "train.overrides": {"en": "key=value overrides.", "zh": "key=value 覆盖项。"},
    "train.print_config": {
        "en": "Print the resolved config (every default filled) and exit.",
        "zh": "打印解析后的完整配置（含全部默认值）后退出。",
    },
    "train.help_keys": {
        "en": "List every config key with its help text and exit.",
        "zh": "列出所有配置项及其说明后退出。",
    },
    "data": {"en": "Inspect datasets.", "zh": "查看数据集。"},
    "data.preview": {
        "en": "Show N formatted, tokenized samples with the masked part marked, and token-length statistics.",
        "zh": "显示 N 条格式化并分词后的样本（标出被掩码部分），以及 token 长度统计。",
    },
    "data.n": {"en": "Number of samples to show.", "zh": "显示的样本数。"},
    "env": {
        "en": "Show versions of tunelab and its libraries, and the devices found.",
        "zh": "显示 tunelab 及依赖库的版本和检测到的设备。",
    },
    "version": {"en": "Print tunelab's version.", "zh": "打印 tunelab 的版本号。"},
    "demo": {
        "en": "Fine-tune the real SmolLM2-135M-Instruct on tunelab's identity data and show before/after.",
        "zh": "在 tunelab 身份数据上微调真实的 SmolLM2-135M-Instruct，并展示训练前后的对比。",
    },
    "demo.steps": {"en": "Optimizer steps to train.", "zh": "训练的优化步数。"},
    "demo.output": {"en": "Run directory.", "zh": "运行目录。"},
    "debug": {"en": "Show full tracebacks on errors.", "zh": "出错时显示完整的调用栈。"},
    "lang": {"en": "Language of help texts: en or zh.", "zh": "说明文字的语言：en 或 zh。"},
    "hint": {"en": "hint", "zh": "提示"},
    "error": {"en": "error", "zh": "错误"},
}


def cli_lang() -> str:
    """'zh' when TUNELAB_LANG or LANG asks for Chinese, else 'en'."""
    wanted = os.environ.get("TUNELAB_LANG") or os.environ.get("LANG", "")
    return "zh" if wanted.lower().startswith("zh") else "en"


def t(key: str, lang: str | None = None) -> str:
    """The text ``key`` in ``lang`` (default: the CLI language)."""
    return TEXTS[key][lang or cli_lang()]
