"""The export_* keys: quantization method, calibration data and device are checked together, with fixes."""

from __future__ import annotations

from typing import Any

import pytest

from tunelab.config import ExportArgs, config_from_dict, help_text
from tunelab.errors import ConfigError

BASE = {"model_name_or_path": "tiny:llama"}
GPTQ = {"export_quantization_bit": 4, "export_quantization_method": "gptq"}
BNB = {"export_quantization_method": "bnb"}


def _error(**keys: Any) -> str:
    with pytest.raises(ConfigError) as info:
        config_from_dict({**BASE, **keys})
    return info.value.message


def test_defaults_match_llama_factory() -> None:
    export = config_from_dict(BASE).export
    # LLaMA-Factory quantizes an export with GPTQ on export_quantization_dataset
    assert export.export_device == "cpu" and export.export_quantization_method == "gptq"
    assert export.export_quantization_dataset is None
    assert (export.export_quantization_nsamples, export.export_quantization_maxlen) == (128, 1024)
    for key in ("export_device", "export_quantization_method", "export_quantization_dataset"):
        assert help_text(ExportArgs, key, "en") and help_text(ExportArgs, key, "zh") != help_text(
            ExportArgs, key
        )


def test_gptq_with_bits_and_dataset_is_valid() -> None:
    export = config_from_dict(
        {
            **BASE,
            **GPTQ,
            "export_quantization_bit": 3,
            "export_quantization_dataset": "instruct_en",
            "export_quantization_nsamples": 16,
            "export_device": "auto",
        }
    ).export
    assert (export.export_quantization_bit, export.export_quantization_dataset) == (3, "instruct_en")
    assert export.export_device == "auto"


def test_gptq_needs_bits_and_calibration_data() -> None:
    # without export_quantization_bit nothing is quantized: the method (default gptq) does not matter
    assert (
        config_from_dict({**BASE, "export_quantization_method": "gptq"}).export.export_quantization_bit
        is None
    )
    message = _error(**GPTQ)
    assert "needs calibration data; set export_quantization_dataset" in message


def test_dataset_without_gptq_says_what_to_set() -> None:
    message = _error(export_quantization_dataset="instruct_en")
    assert "export_quantization_bit is not" in message
    assert "set export_quantization_bit" in message and "export_quantization_method: gptq" in message
    config_from_dict({**BASE, "export_quantization_bit": 4, "export_quantization_dataset": "instruct_en"})
    message = _error(**BNB, export_quantization_bit=4, export_quantization_dataset="instruct_en")
    assert (
        "export_quantization_method is bnb" in message and "set export_quantization_method: gptq" in message
    )


def test_bnb_writes_only_4_or_8_bits() -> None:
    message = _error(**BNB, export_quantization_bit=2)
    assert "export_quantization_bit=2 needs export_quantization_method: gptq" in message


def test_every_problem_is_reported_at_once_and_legacy_is_refused() -> None:
    message = _error(
        **BNB, export_quantization_bit=3, export_quantization_dataset="x.txt", export_legacy_format=True
    )
    assert "export_quantization_bit=3 needs" in message
    assert "export_quantization_method is bnb" in message and "legacy .bin" in message
    assert "legacy .bin" in _error(**GPTQ, export_quantization_dataset="x.txt", export_legacy_format=True)


def test_ranges_and_choices() -> None:
    assert "export_quantization_nsamples" in _error(export_quantization_nsamples=0)
    assert "export_quantization_maxlen" in _error(export_quantization_maxlen=-1)
    assert "export_device" in _error(export_device="cuda")
    assert "export_quantization_method" in _error(export_quantization_method="awq")
