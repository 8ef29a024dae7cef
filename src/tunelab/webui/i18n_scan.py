"""Find English left in Chinese UI text: the words that are neither translated nor a name a user types.

The Chinese UI keeps what a user writes or reads in a config or a terminal: config keys and values
(``learning_rate``, ``cosine``), command names (``lr-find``), templates, datasets, model ids, paths,
numbers and units, and proper nouns (LoRA, DPO, YAML, GPU). Everything else in ASCII letters is a
word someone forgot to translate. The tests scan the built app and the live page with this.

    untranslated("学习率调度器：cosine · 3 GB") == []
    untranslated("Start again to continue") == ["Start", "again", "to", "continue"]
"""

from __future__ import annotations

import re
from functools import cache

__all__ = ["PROPER_NOUNS", "allowed_words", "untranslated"]

# names that stay as they are in Chinese text (products, methods, formats, units, hardware)
PROPER_NOUNS = frozenset(
    """
    tunelab LLaMA Factory LLaMA-Factory LlamaBoard transformers TrainingArguments PEFT TRL PyTorch torch
    Gradio Optuna TPE DeepSpeed ZeRO FSDP FlashAttention Unsloth Liger Triton NEFTune RoPE TensorBoard
    LoRA QLoRA DoRA rsLoRA PiSSA OFT GaLore LoRA+ DPO KTO PPO ORPO SimPO RM SFT KD JSD KL MoD Adam AdamW SGD
    EMA NaN Inf FTX Beta beta alpha gamma T Top-p Top-k top-k top-p BLEU ROUGE F1 ppl PPL MC
    YAML JSON JSONL CSV PNG HTML URL API CLI UI Web ID Hub GGUF gguf safetensors bitsandbytes bnb gptq GPTQ AWQ
    GPU CPU CUDA NVIDIA AMX AVX512 AVX512-BF16 BF16 bf16 fp16 fp32 FP16 FP32 int4 int8 gloo nccl SQLite
    PostgreSQL RDB OpenAI SmolLM2 MiniLM English GB MB KB TB s ms token tokens logits P95 x vs ETA README
    Hugging Face TensorBoard tensorboard wandb mlflow Hinton GKD Jensen-Shannon SLiC softmax dropout tau
    Language logit llama qwen2 bert
    """.split()
)
_CLI_COMMANDS = (
    "train check env version demo export expand-model eval chat api advise estimate find-batch lr-find "
    "runs sweep tune webui data around grid random"  # commands and the sweep modes they take
).split()
_EDGE = "()[]{}<>,.;:!?'\"`«»“”‘’·*|"
_NUMBER = re.compile(r"^[+\-]?[\d.,]+(e[+\-]?\d+)?[%x]?$", re.IGNORECASE)
_CHUNK = re.compile(r"[!-~]+")  # runs of printable ASCII without spaces
# `code`, 'a value' and "a value" in ASCII quotes are what a user types (Chinese text quotes with “”)
_QUOTED = re.compile(r"`[^`]*`|'[^'\s][^']*'|\"[^\"]*\"")


@cache
def allowed_words() -> frozenset[str]:
    """Proper nouns, units, CLI commands and the config vocabulary: keys, choice values, templates,
    bundled datasets and model presets (what a user types in a YAML file stays untranslated)."""
    from tunelab.data.registry import load_registry
    from tunelab.data.template import template_names
    from tunelab.webui.forms import config_keys, field_spec
    from tunelab.webui.topbar import MODEL_PRESETS

    words = set(PROPER_NOUNS) | set(_CLI_COMMANDS) | set(MODEL_PRESETS) | set(template_names())
    for key in config_keys():
        words.add(key)
        words.update(str(choice) for choice in field_spec(key).choices)
    words.update(load_registry("builtin"))
    words.update(("none", "auto", "true", "false", "null"))
    return frozenset(words)


def _allowed(token: str, words: frozenset[str]) -> bool:
    if len(token) == 1 or not re.search("[A-Za-z]", token) or _NUMBER.match(token) or token in words:
        return True
    if any(mark in token for mark in "/\\=_@$~") or re.search(r"\w\.\w|\d", token):
        return True  # a path, key=value, an identifier, a file name, a version, a name with digits
    parts = [p for p in re.split(r"[-+]", token) if p]
    return len(parts) > 1 and all(p in words or _NUMBER.match(p) or len(p) == 1 for p in parts)


def untranslated(text: str, extra: frozenset[str] | set[str] = frozenset()) -> list[str]:
    """The ASCII words of ``text`` that are not allowed in Chinese UI text (see the module docstring)."""
    words = allowed_words() | frozenset(extra)
    found = []
    for chunk in _CHUNK.findall(_QUOTED.sub(" ", text or "")):
        if re.match(r"\.[a-z]+\b|--?[a-z]", chunk):  # a file extension (.bin, .jsonl) or a CLI flag
            continue
        token = chunk.strip(_EDGE)
        if token and not _allowed(token, words):
            found.append(token)
    return found
