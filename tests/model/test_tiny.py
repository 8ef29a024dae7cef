"""The tiny offline models: deterministic, cached, usable as ordinary transformers checkpoints."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from tunelab.errors import ModelError
from tunelab.model.tiny import build_tiny


def _digests(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def test_build_is_deterministic_across_cache_dirs(tiny_model_dir: Path, tmp_path: Path) -> None:
    rebuilt = build_tiny("llama", tmp_path)
    assert rebuilt != tiny_model_dir
    assert rebuilt.name == tiny_model_dir.name
    assert _digests(rebuilt) == _digests(tiny_model_dir)


def test_build_reuses_cache(tiny_model_dir: Path) -> None:
    before = (tiny_model_dir / "model.safetensors").stat().st_mtime_ns
    again = build_tiny("llama", tiny_model_dir.parent)
    assert again == tiny_model_dir
    assert (again / "model.safetensors").stat().st_mtime_ns == before
    leftovers = [p for p in tiny_model_dir.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_unknown_preset_lists_presets(tmp_path: Path) -> None:
    with pytest.raises(ModelError) as err:
        build_tiny("gpt5", tmp_path)
    assert "gpt5" in err.value.message
    assert "tiny:llama" in err.value.hint and "tiny:qwen2" in err.value.hint


def test_tokenizer_special_tokens_and_chat_template(tiny_tokenizer) -> None:
    tok = tiny_tokenizer
    assert tok.pad_token == "<|endoftext|>"
    assert tok.eos_token == "<|im_end|>"
    assert 1000 <= len(tok) <= 2000
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 12 times 8? 你好"},
    ]
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nWhat is 12 times 8? 你好<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    ids = tok(text)["input_ids"]
    assert tok.decode(ids) == text  # byte-level: lossless round trip, Chinese included
    assert ids.count(tok.convert_tokens_to_ids("<|im_start|>")) == 3
    # Special tokens are single ids, never split into pieces.
    assert tok.convert_tokens_to_ids("<|im_end|>") in ids


@pytest.mark.parametrize(
    ("fixture", "model_type"), [("tiny_model_dir", "llama"), ("tiny_qwen2_dir", "qwen2")]
)
def test_presets_load_and_run(fixture: str, model_type: str, request: pytest.FixtureRequest) -> None:
    directory: Path = request.getfixturevalue(fixture)
    model = AutoModelForCausalLM.from_pretrained(directory)
    tok = AutoTokenizer.from_pretrained(directory)
    assert model.config.model_type == model_type
    assert model.config.hidden_size == 64 and model.config.num_hidden_layers == 2
    assert model.config.num_key_value_heads == 2
    assert model.config.vocab_size == len(tok)
    assert model.config.eos_token_id == tok.eos_token_id
    batch = tok(["Hello there", "你好"], return_tensors="pt", padding=True)
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape[:2] == batch["input_ids"].shape and logits.shape[-1] == len(tok)
    assert torch.isfinite(logits).all()


def test_concurrent_builds_in_threads_agree(tiny_model_dir: Path, tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda _: build_tiny("llama", tmp_path), range(2)))
    assert results[0] == results[1]
    assert [p.name for p in tmp_path.iterdir()] == [tiny_model_dir.name]
    assert _digests(results[0]) == _digests(tiny_model_dir)


@pytest.mark.slow
def test_concurrent_builds_in_processes_agree(tmp_path: Path) -> None:
    """Two processes building the same preset at once both end with the same complete directory."""
    import subprocess
    import sys

    code = "import sys; from pathlib import Path; from tunelab.model.tiny import build_tiny; "
    code += "print(build_tiny('qwen2', Path(sys.argv[1])))"
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [proc.communicate(timeout=120)[0].strip() for proc in procs]
    assert all(proc.returncode == 0 for proc in procs)
    assert outputs[0] == outputs[1]
    assert sorted(p.name for p in tmp_path.iterdir()) == [Path(outputs[0]).name]  # no staging left behind
    AutoModelForCausalLM.from_pretrained(outputs[0])
