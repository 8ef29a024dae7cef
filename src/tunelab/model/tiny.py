"""Tiny random models built offline in seconds, so tests and the demo never need a hub.

`build_tiny("llama")` trains a byte-level BPE tokenizer on the bundled text, builds a small randomly
initialised model with a fixed seed and saves both with `save_pretrained` into a cache directory whose
name hashes every input. The same inputs always give the same directory and the same weights.
`build_tiny("bert")` does the same for an encoder (WordPiece, masked-LM warm-up; see tiny_encoder.py),
for stage cls.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from tunelab.errors import ModelError

__all__ = [
    "CHATML_TEMPLATE",
    "ENDOFTEXT",
    "IM_END",
    "IM_START",
    "TINY_PRESETS",
    "build_tiny",
    "default_cache_root",
    "tiny_corpus_files",
]

# Bump when the build recipe changes, so old cache entries are not reused.
_BUILD_VERSION = "2"
# A short language-model warm-up on the bundled text: a purely random model sits at the uniform
# distribution, where LoRA (small updates on frozen random features) barely moves the loss; after
# the warm-up the tiny model behaves like a (very small) pretrained one, so adapter tests mean something.
_PRETRAIN_STEPS = 150
_PRETRAIN_BATCH = 16
_PRETRAIN_BLOCK = 64
_PRETRAIN_LR = 3e-3
_SEED = 1234
_VOCAB_SIZE = 2000
# Model init draws from torch's global RNG: two threads building at once would interleave their draws.
_BUILD_LOCK = threading.Lock()

ENDOFTEXT = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = [ENDOFTEXT, IM_START, IM_END]

# ChatML: the same shape Qwen2 and SmolLM2 use. A system turn is optional; add_generation_prompt opens
# an assistant turn. Written here, not copied from a model card, so it works with no files around it.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# Shared shape of both presets: small enough to train on 2 CPU cores in a blink.
_COMMON_SHAPE: dict[str, Any] = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 1024,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": False,
}

TINY_PRESETS: dict[str, dict[str, Any]] = {
    "llama": {"architecture": "LlamaForCausalLM", **_COMMON_SHAPE},
    "qwen2": {"architecture": "Qwen2ForCausalLM", **_COMMON_SHAPE},
    # an encoder for stage cls (BERT/MiniLM-like), built by tiny_encoder.py
    "bert": {
        "architecture": "BertForMaskedLM",
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "max_position_embeddings": 512,
        # dropout only slows a model this small down (the causal presets have none either)
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
    },
}
_ENCODERS = frozenset({"bert"})


def default_cache_root() -> Path:
    """Root of tunelab's local caches (tiny models, converted GGUF files)."""
    return Path.home() / ".cache" / "tunelab"


def tiny_corpus_files() -> list[Path]:
    """Text the tiny tokenizer is trained on: the bundled corpus plus every bundled dataset file."""
    root = Path(str(resources.files("tunelab") / "resources"))
    files = [root / "tiny_corpus.txt"]
    data_dir = root / "data"
    if data_dir.is_dir():
        found = [p for p in data_dir.rglob("*") if p.is_file() and p.suffix in {".json", ".jsonl", ".txt"}]
        files.extend(sorted(found, key=lambda p: p.relative_to(root).as_posix()))
    return files


def build_tiny(preset: str, cache_dir: Path | None = None) -> Path:
    """Return the directory of the tiny model `preset`, building it the first time.

    Safe when several processes build at once: each builds in its own temporary folder and renames it
    into place; the loser of the race discards its copy and uses the winner's (identical) one.
    """
    if preset not in TINY_PRESETS:
        raise ModelError(
            f"unknown tiny model preset {preset!r}",
            f"use one of: {', '.join('tiny:' + name for name in sorted(TINY_PRESETS))}",
        )
    root = Path(cache_dir) if cache_dir is not None else default_cache_root() / "tiny"
    files = tiny_corpus_files()
    target = root / f"{preset}-{_cache_key(preset, files)}"
    if _is_complete(target):
        return target
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{preset}-building-", dir=root))
    try:
        _build_into(staging, preset, files)
        try:
            os.rename(staging, target)
        except OSError:
            # Another process finished first (target exists and is non-empty): use its copy.
            if not _is_complete(target):
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _cache_key(preset: str, files: list[Path]) -> str:
    digest = hashlib.sha256()
    digest.update(f"v{_BUILD_VERSION}|seed{_SEED}|vocab{_VOCAB_SIZE}|".encode())
    digest.update(json.dumps(TINY_PRESETS[preset], sort_keys=True).encode())
    digest.update(CHATML_TEMPLATE.encode())
    for path in files:
        digest.update(path.as_posix().rsplit("/resources/", 1)[-1].encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def _is_complete(path: Path) -> bool:
    needed = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")
    return all((path / name).is_file() for name in needed)


def _build_into(out_dir: Path, preset: str, files: list[Path]) -> None:
    if preset in _ENCODERS:
        from tunelab.model.tiny_encoder import build_encoder_into

        with _BUILD_LOCK:
            build_encoder_into(
                out_dir,
                TINY_PRESETS[preset],
                files,
                seed=_SEED,
                vocab_size=_VOCAB_SIZE,
                steps=_PRETRAIN_STEPS,
                lr=_PRETRAIN_LR,
            )
        return
    with _BUILD_LOCK:
        tokenizer = _train_tokenizer(files)
        tokenizer.save_pretrained(out_dir)
        model = _build_model(preset, tokenizer)
        _pretrain(model, tokenizer, files)
        model.save_pretrained(out_dir)


def _pretrain(model: Any, tokenizer: Any, files: list[Path]) -> None:
    """Warm the random model up on the bundled text (seeded, a few seconds; see _PRETRAIN_STEPS)."""
    import torch

    eos = tokenizer.convert_tokens_to_ids(ENDOFTEXT)
    stream: list[int] = []
    for line in _lines([path.read_text(encoding="utf-8") for path in files]):
        stream.extend(tokenizer.encode(line) + [eos])
    n_blocks = len(stream) // _PRETRAIN_BLOCK
    blocks = torch.tensor(stream[: n_blocks * _PRETRAIN_BLOCK]).view(n_blocks, _PRETRAIN_BLOCK)
    optimizer = torch.optim.AdamW(model.parameters(), lr=_PRETRAIN_LR, weight_decay=0.0)
    model.train()
    with torch.random.fork_rng(devices=[]):
        generator = torch.Generator().manual_seed(_SEED)
        for step in range(_PRETRAIN_STEPS):
            batch = blocks[torch.randint(0, n_blocks, (_PRETRAIN_BATCH,), generator=generator)]
            scale = min(1.0, (step + 1) / 10) * (1 - step / _PRETRAIN_STEPS)  # warm-up, linear decay
            for group in optimizer.param_groups:
                group["lr"] = _PRETRAIN_LR * scale
            model(input_ids=batch, labels=batch).loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    model.eval()


def _train_tokenizer(files: list[Path]) -> Any:
    """Train a byte-level BPE (any text encodes, nothing is unknown) and wrap it for transformers."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=_VOCAB_SIZE,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    texts = [path.read_text(encoding="utf-8") for path in files]
    backend.train_from_iterator(_lines(texts), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token=IM_END,
        pad_token=ENDOFTEXT,
        bos_token=None,
        unk_token=None,
        chat_template=CHATML_TEMPLATE,
        model_max_length=TINY_PRESETS["llama"]["max_position_embeddings"],
        padding_side="right",
        clean_up_tokenization_spaces=False,
    )


def _lines(texts: list[str]) -> Any:
    for text in texts:
        yield from (line for line in text.splitlines() if line.strip())


def _build_model(preset: str, tokenizer: Any) -> Any:
    import torch
    import transformers

    spec = dict(TINY_PRESETS[preset])
    architecture = spec.pop("architecture")
    model_class: Callable[..., Any] = getattr(transformers, architecture)
    config_class = model_class.config_class
    pad_id = tokenizer.convert_tokens_to_ids(ENDOFTEXT)
    eos_id = tokenizer.convert_tokens_to_ids(IM_END)
    config = config_class(
        vocab_size=len(tokenizer),
        bos_token_id=pad_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        **spec,
    )
    # Seed a private generator state so building never disturbs the caller's RNG.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_SEED)
        model = model_class(config)
    model.generation_config.eos_token_id = eos_id
    model.generation_config.pad_token_id = pad_id
    model.generation_config.bos_token_id = pad_id
    return model
