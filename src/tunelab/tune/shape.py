"""A model's architecture in numbers — what memory and learning-rate rules need — read without its weights.

Sources, cheapest first: a preset (`--model-config llama3-8b`), a checkpoint's ``config.json`` (with the
exact parameter count summed from the safetensors headers, which are a few kilobytes of JSON), or a
GGUF file's metadata and tensor table (memory-mapped; nothing is dequantized). Parameter counts
follow the decoder layout shared by Llama, Qwen2, Mistral and SmolLM (RMSNorm, GQA attention with
optional q/k/v bias, gated MLP) and ChatGLM's fused variant of it.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tunelab.errors import ModelError

__all__ = ["LinearSpec", "ModelShape", "fmt_params", "read_model_shape", "shape_from_hf_config"]


def fmt_params(n: float) -> str:
    """A parameter count as people write it: 8.03B, 135M, 330K."""
    for scale, unit in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if n >= scale:
            return f"{n / scale:.3g}{unit}"
    return str(int(n))


@dataclass(frozen=True)
class LinearSpec:
    """One linear layer inside a decoder block: its module name and (in, out) features."""

    name: str
    in_features: int
    out_features: int
    bias: bool = False

    @property
    def n_params(self) -> int:
        return self.in_features * self.out_features + (self.out_features if self.bias else 0)


@dataclass(frozen=True)
class ModelShape:
    """Architecture numbers of a decoder-only causal LM."""

    name: str
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    tie_embeddings: bool = False
    qkv_bias: bool = False
    family: str = "llama"  # "llama" (separate q/k/v, gate/up/down) or "chatglm" (fused qkv and gate+up)
    max_position: int | None = None
    exact_params: int | None = None  # counted from the checkpoint's tensors, when they were at hand
    source: str = "preset"

    @property
    def q_dim(self) -> int:
        return self.num_heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.num_kv_heads * self.head_dim

    def layer_linears(self) -> list[LinearSpec]:
        """The linear layers of one decoder block, with the module names LoRA targets use."""
        h, q, kv, inter = self.hidden_size, self.q_dim, self.kv_dim, self.intermediate_size
        if self.family == "chatglm":
            return [
                LinearSpec("query_key_value", h, q + 2 * kv, bias=self.qkv_bias),
                LinearSpec("dense", q, h),
                LinearSpec("dense_h_to_4h", h, 2 * inter),
                LinearSpec("dense_4h_to_h", inter, h),
            ]
        return [
            LinearSpec("q_proj", h, q, bias=self.qkv_bias),
            LinearSpec("k_proj", h, kv, bias=self.qkv_bias),
            LinearSpec("v_proj", h, kv, bias=self.qkv_bias),
            LinearSpec("o_proj", q, h),
            LinearSpec("gate_proj", h, inter),
            LinearSpec("up_proj", h, inter),
            LinearSpec("down_proj", inter, h),
        ]

    @property
    def layer_params(self) -> int:
        """Parameters of one decoder block: its linear layers and two RMSNorm gains."""
        return sum(spec.n_params for spec in self.layer_linears()) + 2 * self.hidden_size

    @property
    def embedding_params(self) -> int:
        """Input embedding plus output head (counted once when they are tied)."""
        table = self.vocab_size * self.hidden_size
        return table if self.tie_embeddings else 2 * table

    @property
    def computed_params(self) -> int:
        """Total parameters from the architecture: blocks, embeddings, final norm."""
        return self.num_layers * self.layer_params + self.embedding_params + self.hidden_size

    @property
    def n_params(self) -> int:
        """The exact count when the checkpoint was read, else the architecture's."""
        return self.exact_params if self.exact_params is not None else self.computed_params

    @property
    def lm_head_params(self) -> int:
        return self.vocab_size * self.hidden_size

    def describe(self, lang: str = "en") -> str:
        """One line: size, layers, width, heads, vocabulary."""
        size = fmt_params(self.n_params)
        if lang == "zh":
            return (
                f"{self.name}：{size} 参数，{self.num_layers} 层，隐藏维度 {self.hidden_size}，"
                f"{self.num_heads} 个注意力头（{self.num_kv_heads} 个 KV 头），MLP {self.intermediate_size}，"
                f"词表 {self.vocab_size}" + ("，输入输出嵌入共享" if self.tie_embeddings else "")
            )
        return (
            f"{self.name}: {size} parameters, {self.num_layers} layers, hidden {self.hidden_size}, "
            f"{self.num_heads} heads ({self.num_kv_heads} kv), MLP {self.intermediate_size}, vocab {self.vocab_size}"
            + (", tied embeddings" if self.tie_embeddings else "")
        )


def shape_from_hf_config(config: dict[str, Any], name: str, source: str) -> ModelShape:
    """A ModelShape from a transformers ``config.json`` dict (Llama-like or ChatGLM)."""
    if config.get("model_type") == "chatglm" or "ffn_hidden_size" in config:
        heads = int(config["num_attention_heads"])
        hidden = int(config["hidden_size"])
        kv_heads = (
            int(config.get("multi_query_group_num", heads)) if config.get("multi_query_attention") else heads
        )
        return ModelShape(
            name=name,
            hidden_size=hidden,
            num_layers=int(config["num_layers"]),
            num_heads=heads,
            num_kv_heads=kv_heads,
            head_dim=int(config.get("kv_channels", hidden // heads)),
            intermediate_size=int(config["ffn_hidden_size"]),
            vocab_size=int(config.get("padded_vocab_size", config.get("vocab_size", 0))),
            tie_embeddings=False,
            qkv_bias=bool(config.get("add_qkv_bias", False)),
            family="chatglm",
            max_position=config.get("seq_length"),
            source=source,
        )
    text = config.get("text_config")
    if isinstance(text, dict) and "hidden_size" not in config:  # multimodal wrapper: the language model
        config = text
    try:
        hidden = int(config["hidden_size"])
        heads = int(config["num_attention_heads"])
        model_type = str(config.get("model_type", ""))
        return ModelShape(
            name=name,
            hidden_size=hidden,
            num_layers=int(config["num_hidden_layers"]),
            num_heads=heads,
            num_kv_heads=int(config.get("num_key_value_heads") or heads),
            head_dim=int(config.get("head_dim") or hidden // heads),
            intermediate_size=int(config["intermediate_size"]),
            vocab_size=int(config["vocab_size"]),
            tie_embeddings=bool(config.get("tie_word_embeddings", False)),
            qkv_bias=bool(config.get("attention_bias", False)) or model_type == "qwen2",
            max_position=config.get("max_position_embeddings"),
            source=source,
        )
    except (KeyError, TypeError, ValueError) as err:
        raise ModelError(
            f"{source}: cannot read the architecture ({err!r} missing or malformed)",
            "tunelab's estimates know Llama-like decoders (Llama, Qwen2, Mistral, SmolLM) and ChatGLM; "
            "use --model-config with a preset for others",
        ) from err


def read_model_shape(model_name_or_path: str, cache_dir: str | None = None) -> ModelShape:
    """The shape of the model a config names, without loading its weights where that is possible."""
    from tunelab.model.resolve import SMOLLM2_NAME, find_smollm2_gguf, resolve_model_path

    text = model_name_or_path.strip()
    if text.lower() == SMOLLM2_NAME:
        return read_gguf_shape(find_smollm2_gguf(), name="SmolLM2-135M-Instruct")
    if text.lower().endswith(".gguf"):
        return read_gguf_shape(Path(text).expanduser())
    # tiny:<preset> models are built (seconds, cached); a directory is read as it is.
    path = resolve_model_path(text, cache_dir)
    config_path = path / "config.json"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ModelError(
            f"cannot read {config_path}: {err}", "the model directory needs a valid config.json"
        ) from err
    shape = shape_from_hf_config(config, name=text, source=str(config_path))
    exact = count_safetensors_params(path)
    return replace(shape, exact_params=exact) if exact else shape


def count_safetensors_params(directory: Path) -> int | None:
    """Parameters stored in ``directory``'s safetensors files, from their JSON headers alone."""
    total = 0
    files = sorted(directory.glob("*.safetensors"))
    for file in files:
        try:
            with open(file, "rb") as handle:
                (size,) = struct.unpack("<Q", handle.read(8))
                header = json.loads(handle.read(size))
        except (OSError, struct.error, json.JSONDecodeError, UnicodeDecodeError):
            return None
        for key, info in header.items():
            if key != "__metadata__":
                count = 1
                for dim in info.get("shape", []):
                    count *= int(dim)
                total += count
    return total or None


def read_gguf_shape(path: Path, name: str | None = None) -> ModelShape:
    """A ModelShape from a GGUF file's metadata; the parameter count is summed from its tensor table."""
    if not path.is_file():
        raise ModelError(f"GGUF file not found: {path}", "check model_name_or_path")
    try:
        meta, tensors = read_gguf_header(path)
    except (OSError, ValueError, struct.error) as err:
        raise ModelError(
            f"cannot read GGUF file {path}: {err}", "check that the file is a complete GGUF"
        ) from err
    arch = str(meta.get("general.architecture", "llama"))

    def number(key: str, default: int | None = None) -> int:
        value = meta.get(f"{arch}.{key}", default)
        if value is None:
            raise ModelError(f"{path}: GGUF metadata lacks {arch}.{key}", "use --model-config with a preset")
        return int(value)

    hidden, heads = number("embedding_length"), number("attention.head_count")
    return ModelShape(
        name=name or path.stem,
        hidden_size=hidden,
        num_layers=number("block_count"),
        num_heads=heads,
        num_kv_heads=number("attention.head_count_kv", heads),
        head_dim=number("attention.key_length", hidden // heads),
        intermediate_size=number("feed_forward_length"),
        vocab_size=number("vocab_size", meta.get("tokenizer.ggml.tokens")),
        tie_embeddings="output.weight" not in tensors,
        qkv_bias="blk.0.attn_q.bias" in tensors,
        max_position=meta.get(f"{arch}.context_length"),
        exact_params=sum(tensors.values()),
        source=str(path),
    )


# GGUF value types (https://github.com/ggml-org/ggml/blob/master/docs/gguf.md): struct format per scalar type.
_GGUF_SCALARS = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_GGUF_STRING, _GGUF_ARRAY = 8, 9


def read_gguf_header(path: Path) -> tuple[dict[str, Any], dict[str, int]]:
    """(metadata, tensor name -> element count) of a GGUF file, reading only its header.

    Arrays are not kept: an array value is replaced by its length (the tokenizer's token list gives
    the vocabulary size). gguf's own GGUFReader parses every array element, which takes seconds for
    a 49k-token vocabulary; this reads the same header in milliseconds.
    """
    with open(path, "rb") as handle:
        if handle.read(4) != b"GGUF":
            raise ValueError("not a GGUF file (bad magic)")
        (version,) = struct.unpack("<I", handle.read(4))
        if version < 2:
            raise ValueError(f"GGUF version {version} is too old (need 2 or later)")
        n_tensors, n_kv = struct.unpack("<QQ", handle.read(16))

        def read_string() -> str:
            (length,) = struct.unpack("<Q", handle.read(8))
            return handle.read(length).decode("utf-8", errors="replace")

        def read_value(kind: int) -> Any:
            if kind == _GGUF_STRING:
                return read_string()
            if kind == _GGUF_ARRAY:
                item_kind, count = struct.unpack("<IQ", handle.read(12))
                if item_kind in _GGUF_SCALARS:
                    handle.seek(count * struct.calcsize(_GGUF_SCALARS[item_kind]), 1)
                else:
                    for _ in range(count):
                        read_value(item_kind)
                return count
            fmt = _GGUF_SCALARS[kind]
            return struct.unpack(fmt, handle.read(struct.calcsize(fmt)))[0]

        meta: dict[str, Any] = {}
        for _ in range(n_kv):
            key = read_string()
            (kind,) = struct.unpack("<I", handle.read(4))
            meta[key] = read_value(kind)
        tensors: dict[str, int] = {}
        for _ in range(n_tensors):
            name = read_string()
            (n_dims,) = struct.unpack("<I", handle.read(4))
            count = 1
            for dim in struct.unpack(f"<{n_dims}Q", handle.read(8 * n_dims)):
                count *= dim
            handle.read(12)  # tensor type (uint32) and data offset (uint64)
            tensors[name] = count
    return meta, tensors
