"""Quantized export wiring: GPTQConfig built from the export keys, and clear refusals where it cannot run."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM, GPTQConfig
from transformers.utils.quantization_config import QuantizationMethod

from tunelab.errors import ResourceError
from tunelab.export.quantize import build_gptq_config, check_quantized_export_supported, gptq_group_size

MISSING_GPTQ = [name for name in ("optimum", "gptqmodel") if importlib.util.find_spec(name) is None]


def test_gptq_config_carries_bits_texts_tokenizer_and_length(tiny_tokenizer: Any) -> None:
    texts = ["<|im_start|>user\nHi<|im_end|>\n", "plain calibration text"]
    config = build_gptq_config(3, texts, tiny_tokenizer, max_len=256, group_size=64)
    assert isinstance(config, GPTQConfig) and config.quant_method == QuantizationMethod.GPTQ
    assert (config.bits, config.group_size, config.model_seqlen, config.batch_size) == (3, 64, 256, 1)
    assert config.dataset == texts and config.dataset is not texts  # its own copy
    assert config.tokenizer is tiny_tokenizer
    assert not config.desc_act and config.sym
    serialised = config.to_dict()
    assert serialised["bits"] == 3 and serialised["quant_method"] == "gptq"


def test_group_size_tiles_every_quantized_layer(tiny_model_dir: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    widths = {m.in_features for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    assert widths == {64, 128}  # hidden 64, intermediate 128: 128 does not tile 64
    assert gptq_group_size(model) == 64
    assert gptq_group_size(torch.nn.Sequential(torch.nn.Linear(96, 8), torch.nn.Linear(32, 8))) == 32
    assert gptq_group_size(torch.nn.Sequential(torch.nn.Linear(50, 8))) == -1


@pytest.mark.skipif(not MISSING_GPTQ, reason="optimum and gptqmodel are installed here")
def test_gptq_refuses_naming_the_missing_packages() -> None:
    with pytest.raises(ResourceError) as info:
        check_quantized_export_supported(4, "gptq")
    message, hint = info.value.message, info.value.hint
    assert "export_quantization_method: gptq" in message
    assert all(name in message for name in MISSING_GPTQ)
    assert f"pip install {' '.join(MISSING_GPTQ)}" in hint and "drop export_quantization_bit" in hint
    assert "CUDA" not in message  # gptq runs on the CPU once the packages are there


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_bnb_refuses_without_a_gpu() -> None:
    with pytest.raises(ResourceError, match="CUDA GPU") as info:
        check_quantized_export_supported(8, "bnb")
    assert "export_quantization_method: gptq" in info.value.hint
