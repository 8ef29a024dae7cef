"""Published architectures of common base models, for estimates of models that are not on disk.

Each entry copies the numbers of the model's official ``config.json`` (hidden size, layers, heads,
key/value heads, MLP width, vocabulary, tied embeddings, q/k/v bias) and records the parameter
total its publisher states, so a test can check that the architecture formula reproduces it.
"""

from __future__ import annotations

from dataclasses import dataclass

from tunelab.errors import ConfigError
from tunelab.tune.shape import ModelShape

__all__ = ["MODEL_PRESETS", "Preset", "find_preset", "preset_names"]


@dataclass(frozen=True)
class Preset:
    """A published architecture and the parameter total its publisher states."""

    shape: ModelShape
    published_params: float
    source: str


def _llama(
    name: str, h: int, layers: int, heads: int, kv: int, inter: int, vocab: int, ctx: int
) -> ModelShape:
    return ModelShape(name, h, layers, heads, kv, h // heads, inter, vocab, max_position=ctx, source="preset")


def _qwen25(
    name: str, h: int, layers: int, heads: int, kv: int, inter: int, vocab: int, tied: bool
) -> ModelShape:
    return ModelShape(
        name, h, layers, heads, kv, h // heads, inter, vocab, tie_embeddings=tied, qkv_bias=True,
        max_position=32768, source="preset",
    )  # fmt: skip


MODEL_PRESETS: dict[str, Preset] = {
    # meta-llama/Llama-2-*-hf config.json; totals from the safetensors index of each repository.
    "llama2-7b": Preset(
        _llama("Llama-2-7B", 4096, 32, 32, 32, 11008, 32000, 4096), 6_738_415_616, "meta-llama/Llama-2-7b-hf"
    ),
    "llama2-13b": Preset(
        _llama("Llama-2-13B", 5120, 40, 40, 40, 13824, 32000, 4096),
        13_015_864_320,
        "meta-llama/Llama-2-13b-hf",
    ),
    "llama2-70b": Preset(
        _llama("Llama-2-70B", 8192, 80, 64, 8, 28672, 32000, 4096),
        68_976_648_192,
        "meta-llama/Llama-2-70b-hf",
    ),
    # meta-llama/Meta-Llama-3-*; the model card says 8B / 70B, the safetensors index the exact totals.
    "llama3-8b": Preset(
        _llama("Llama-3-8B", 4096, 32, 32, 8, 14336, 128256, 8192),
        8_030_261_248,
        "meta-llama/Meta-Llama-3-8B",
    ),
    "llama3-70b": Preset(
        _llama("Llama-3-70B", 8192, 80, 64, 8, 28672, 128256, 8192),
        70_553_706_496,
        "meta-llama/Meta-Llama-3-70B",
    ),
    # Qwen/Qwen2.5-*: "Number of Parameters" on each model card (q/k/v carry a bias; small ones tie embeddings).
    "qwen2.5-0.5b": Preset(
        _qwen25("Qwen2.5-0.5B", 896, 24, 14, 2, 4864, 151936, True), 0.49e9, "Qwen/Qwen2.5-0.5B model card"
    ),
    "qwen2.5-1.5b": Preset(
        _qwen25("Qwen2.5-1.5B", 1536, 28, 12, 2, 8960, 151936, True), 1.54e9, "Qwen/Qwen2.5-1.5B model card"
    ),
    "qwen2.5-3b": Preset(
        _qwen25("Qwen2.5-3B", 2048, 36, 16, 2, 11008, 151936, True), 3.09e9, "Qwen/Qwen2.5-3B model card"
    ),
    "qwen2.5-7b": Preset(
        _qwen25("Qwen2.5-7B", 3584, 28, 28, 4, 18944, 152064, False), 7.61e9, "Qwen/Qwen2.5-7B model card"
    ),
    "qwen2.5-14b": Preset(
        _qwen25("Qwen2.5-14B", 5120, 48, 40, 8, 13824, 152064, False), 14.7e9, "Qwen/Qwen2.5-14B model card"
    ),
    "qwen2.5-32b": Preset(
        _qwen25("Qwen2.5-32B", 5120, 64, 40, 8, 27648, 152064, False), 32.5e9, "Qwen/Qwen2.5-32B model card"
    ),
    "qwen2.5-72b": Preset(
        _qwen25("Qwen2.5-72B", 8192, 80, 64, 8, 29568, 152064, False), 72.7e9, "Qwen/Qwen2.5-72B model card"
    ),
    # THUDM/chatglm3-6b config.json: multi-query attention with 2 groups, fused q/k/v with bias, SwiGLU
    # whose up projection holds gate and up (2 x ffn_hidden_size); "6B" on the card, 6.24B counted.
    "chatglm3-6b": Preset(
        ModelShape(
            "ChatGLM3-6B",
            4096,
            28,
            32,
            2,
            128,
            13696,
            65024,
            qkv_bias=True,
            family="chatglm",
            max_position=8192,
            source="preset",
        ),
        6_243_584_000,
        "THUDM/chatglm3-6b",
    ),  # fmt: skip
}

_ALIASES = {
    "llama-7b": "llama2-7b",
    "llama-13b": "llama2-13b",
    "llama-70b": "llama2-70b",
    "llama-2-7b": "llama2-7b",
    "llama-2-13b": "llama2-13b",
    "llama-2-70b": "llama2-70b",
    "llama-3-8b": "llama3-8b",
    "llama-3-70b": "llama3-70b",
    "chatglm3": "chatglm3-6b",
}


def preset_names() -> list[str]:
    """Every preset name `--model-config` accepts (aliases not included)."""
    return list(MODEL_PRESETS)


def find_preset(name: str) -> Preset:
    """The preset called ``name`` (case-insensitive; 'qwen2.5-7b', 'Qwen2.5-7B', 'llama-7b' ...)."""
    key = name.strip().lower().replace("_", "-")
    key = _ALIASES.get(key, key)
    if key.startswith("qwen2-5"):
        key = "qwen2.5" + key[len("qwen2-5") :]
    if key in MODEL_PRESETS:
        return MODEL_PRESETS[key]
    import difflib

    close = difflib.get_close_matches(key, list(MODEL_PRESETS), n=1)
    raise ConfigError(
        f"unknown --model-config {name!r}" + (f" — did you mean '{close[0]}'?" if close else ""),
        f"presets: {', '.join(MODEL_PRESETS)}",
    )
