"""Turn a GGUF file into an ordinary safetensors checkpoint directory, once, and cache it.

transformers can read a GGUF (`from_pretrained(dir, gguf_file=name)`) and dequantize it to a dense
fp32 model, but that model stays marked as GGUF-quantized and `save_pretrained` refuses it, and every
load pays the dequantization again. Converting once gives a plain directory that training, PEFT and
export handle like any other model.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from tunelab.errors import ModelError
from tunelab.model.tiny import default_cache_root

__all__ = ["convert_gguf", "read_gguf_chat_template"]

# Bump when the conversion recipe changes, so old cache entries are not reused.
_CONVERT_VERSION = "1"
_NEEDED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")


def convert_gguf(gguf_path: Path, cache_dir: Path | None = None) -> Path:
    """Return a safetensors checkpoint directory converted from `gguf_path`, converting on first use.

    The cache entry is keyed by the file's name, size and modification time, so replacing the file
    triggers a new conversion. Weights are saved in fp32: dequantized GGUF values are exact in fp32
    and would be rounded in bf16; the loader picks the compute precision later.
    """
    source = Path(gguf_path).expanduser()
    if not source.is_file():
        raise ModelError(
            f"GGUF file not found: {source}",
            "check the path in model_name_or_path (a .gguf file, a model directory, 'smollm2' or 'tiny:llama')",
        )
    source = source.resolve()
    stat = source.stat()
    key_text = f"v{_CONVERT_VERSION}|{source.name}|{stat.st_size}|{stat.st_mtime_ns}"
    key = hashlib.sha256(key_text.encode()).hexdigest()[:12]
    root = Path(cache_dir) if cache_dir is not None else default_cache_root() / "gguf"
    target = root / f"{source.stem}-{key}"
    if all((target / name).is_file() for name in _NEEDED_FILES):
        return target
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{source.stem}-converting-", dir=root))
    try:
        _convert_into(source, staging)
        try:
            os.rename(staging, target)
        except OSError:
            # Another process converted the same file first; its result is equivalent.
            if not all((target / name).is_file() for name in _NEEDED_FILES):
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def read_gguf_chat_template(gguf_path: Path) -> str | None:
    """The chat template stored in a GGUF's metadata (`tokenizer.chat_template`), if any."""
    from gguf import GGUFReader

    field = GGUFReader(str(gguf_path)).get_field("tokenizer.chat_template")
    if field is None:
        return None
    return field.contents()


def _convert_into(source: Path, out_dir: Path) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    where = {"pretrained_model_name_or_path": str(source.parent), "gguf_file": source.name}
    try:
        config = AutoConfig.from_pretrained(**where)
        tokenizer = AutoTokenizer.from_pretrained(**where)
        quantized = AutoModelForCausalLM.from_pretrained(**where, dtype=torch.float32)
    except (ValueError, KeyError, NotImplementedError, OSError) as err:
        raise ModelError(
            f"cannot read GGUF file {source}: {err}",
            "use a GGUF of an architecture transformers can load (llama, mistral, qwen2, qwen3, gemma, phi3, ...) "
            "or convert the model to a safetensors directory yourself",
        ) from err

    # A fresh model built from the same config carries no quantization marker, so it can be saved.
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    config.dtype = torch.float32
    dense = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    dense.load_state_dict(quantized.state_dict(), strict=True)
    del quantized

    _keep_chat_template(tokenizer, source)
    # A GGUF tokenizer comes with transformers' "unlimited" placeholder length; the model's context is the truth.
    if tokenizer.model_max_length > 10**9:
        tokenizer.model_max_length = config.max_position_embeddings
    dense.generation_config.eos_token_id = tokenizer.eos_token_id
    if tokenizer.pad_token_id is not None:
        dense.generation_config.pad_token_id = tokenizer.pad_token_id
    dense.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    provenance = {"converted_from": str(source), "size": source.stat().st_size, "format": "gguf"}
    (out_dir / "tunelab_source.json").write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")


def _keep_chat_template(tokenizer: Any, source: Path) -> None:
    """Make sure the saved tokenizer has the GGUF's chat template (transformers 5 copies it; older did not)."""
    if getattr(tokenizer, "chat_template", None):
        return
    template = read_gguf_chat_template(source)
    if template:
        tokenizer.chat_template = template
