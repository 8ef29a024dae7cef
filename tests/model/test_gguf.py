"""GGUF -> safetensors conversion, checked on a tiny GGUF written here from the tiny llama model."""

from __future__ import annotations

import json
import os
from pathlib import Path

import gguf
import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from tunelab.errors import ModelError
from tunelab.model.gguf import convert_gguf, read_gguf_chat_template

# Our own template text, different from the tiny model's, so the test proves it came from the GGUF.
GGUF_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

_GGUF_NAMES = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm",
}


def _llama_cpp_permute(weight: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp stores q/k rows with the rotary halves interleaved; transformers undoes this on load."""
    half = weight.shape[0] // n_head // 2
    return weight.reshape(n_head, 2, half, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def write_tiny_gguf(model_dir: Path, path: Path, *, quantize: bool, chat_template: str | None) -> None:
    """Write the tiny llama checkpoint as a llama-architecture GGUF (fp32, or Q8_0 for 2-D weights)."""
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    cfg = model.config
    tok_json = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))
    vocab = tok_json["model"]["vocab"]
    special = {t["content"]: t["id"] for t in tok_json["added_tokens"]}
    tokens = [""] * len(vocab)
    for token, index in vocab.items():
        tokens[index] = token
    types = [gguf.TokenType.CONTROL if t in special else gguf.TokenType.NORMAL for t in tokens]

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tunelab tiny test")
    writer.add_context_length(cfg.max_position_embeddings)
    writer.add_embedding_length(cfg.hidden_size)
    writer.add_block_count(cfg.num_hidden_layers)
    writer.add_feed_forward_length(cfg.intermediate_size)
    writer.add_head_count(cfg.num_attention_heads)
    writer.add_head_count_kv(cfg.num_key_value_heads)
    writer.add_rope_dimension_count(cfg.head_dim)
    writer.add_rope_freq_base(cfg.rope_parameters["rope_theta"])
    writer.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    writer.add_vocab_size(cfg.vocab_size)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges([" ".join(pair) for pair in tok_json["model"]["merges"]])
    writer.add_bos_token_id(special["<|endoftext|>"])
    writer.add_eos_token_id(special["<|im_end|>"])
    writer.add_pad_token_id(special["<|endoftext|>"])
    if chat_template is not None:
        writer.add_chat_template(chat_template)

    def add(name: str, tensor: torch.Tensor) -> None:
        array = tensor.detach().float().numpy()
        if quantize and array.ndim == 2:
            packed = gguf.quants.quantize(array, gguf.GGMLQuantizationType.Q8_0)
            writer.add_tensor(name, packed, raw_shape=packed.shape, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        else:
            writer.add_tensor(name, array)

    state = model.state_dict()
    add("token_embd.weight", state["model.embed_tokens.weight"])
    for layer in range(cfg.num_hidden_layers):
        for hf_name, gguf_name in _GGUF_NAMES.items():
            weight = state[f"model.layers.{layer}.{hf_name}.weight"]
            if gguf_name == "attn_q":
                weight = torch.from_numpy(_llama_cpp_permute(weight.numpy(), cfg.num_attention_heads))
            elif gguf_name == "attn_k":
                weight = torch.from_numpy(_llama_cpp_permute(weight.numpy(), cfg.num_key_value_heads))
            add(f"blk.{layer}.{gguf_name}.weight", weight)
    add("output_norm.weight", state["model.norm.weight"])
    add("output.weight", state["lm_head.weight"])

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


@pytest.fixture(scope="module")
def fp32_gguf(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("gguf") / "tiny-f32.gguf"
    write_tiny_gguf(tiny_model_dir, path, quantize=False, chat_template=GGUF_TEMPLATE)
    return path


@pytest.fixture(scope="module")
def q8_gguf(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("gguf") / "tiny-q8_0.gguf"
    write_tiny_gguf(tiny_model_dir, path, quantize=True, chat_template=None)
    return path


def _logits(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_fp32_gguf_round_trip_matches_source_model(
    fp32_gguf: Path, tiny_model_dir: Path, tiny_tokenizer, tmp_path: Path
) -> None:
    out = convert_gguf(fp32_gguf, tmp_path)
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in out.iterdir()}
    converted = AutoModelForCausalLM.from_pretrained(out)
    source = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(out)

    text = "What is 12 times 8? 你好 <|im_end|>"
    ids = tiny_tokenizer(text, return_tensors="pt")["input_ids"]
    assert tokenizer(text, return_tensors="pt")["input_ids"].tolist() == ids.tolist()
    torch.testing.assert_close(_logits(converted, ids), _logits(source, ids), rtol=1e-5, atol=1e-5)
    assert tokenizer.chat_template == GGUF_TEMPLATE
    assert tokenizer.eos_token == "<|im_end|>"
    assert converted.generation_config.eos_token_id == tokenizer.eos_token_id
    assert "quantization_config" not in json.loads((out / "config.json").read_text())


def test_quantized_gguf_matches_transformers_gguf_loader(q8_gguf: Path, tmp_path: Path) -> None:
    out = convert_gguf(q8_gguf, tmp_path)
    converted = AutoModelForCausalLM.from_pretrained(out)
    reference = AutoModelForCausalLM.from_pretrained(
        q8_gguf.parent, gguf_file=q8_gguf.name, dtype=torch.float32
    )
    ids = torch.tensor([[5, 17, 250, 999, 3, 42]])
    torch.testing.assert_close(_logits(converted, ids), _logits(reference, ids), rtol=0, atol=0)
    assert read_gguf_chat_template(q8_gguf) is None


def test_conversion_is_cached_by_name_size_mtime(fp32_gguf: Path, tmp_path: Path) -> None:
    first = convert_gguf(fp32_gguf, tmp_path)
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    assert convert_gguf(fp32_gguf, tmp_path) == first
    assert (first / "model.safetensors").stat().st_mtime_ns == stamp

    copy = tmp_path / "elsewhere" / fp32_gguf.name
    copy.parent.mkdir()
    copy.write_bytes(fp32_gguf.read_bytes())
    os.utime(copy, ns=(stamp, stamp + 10**9))  # same name and size, other mtime -> converted again
    assert convert_gguf(copy, tmp_path) != first
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_missing_and_invalid_gguf_raise_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        convert_gguf(tmp_path / "nope.gguf", tmp_path)
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"this is not a gguf file at all")
    with pytest.raises(ModelError) as err:
        convert_gguf(bogus, tmp_path / "cache")
    assert str(bogus) in err.value.message


@pytest.mark.slow
def test_real_smollm2_conversion_answers_paris(tmp_path: Path) -> None:
    from tunelab.model.resolve import find_smollm2_gguf

    out = convert_gguf(find_smollm2_gguf(), tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out)
    assert tokenizer.chat_template and "<|im_start|>" in tokenizer.chat_template
    batch = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    output = model.generate(**batch, max_new_tokens=20, do_sample=False)
    answer = tokenizer.decode(output[0, batch["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer
