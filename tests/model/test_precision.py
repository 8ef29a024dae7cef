"""Precision and attention choices: pure decision tables, plus what this machine resolves to."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tunelab.errors import ConfigError, ResourceError
from tunelab.model.attention import choose_attn_implementation, resolve_attn_implementation
from tunelab.model.matmul_probe import cpu_bf16_speedup, matmul_rate
from tunelab.model.precision import (
    BF16_MIN_SPEEDUP,
    choose_compute,
    cpu_flags,
    describe_compute_choice,
    resolve_compute_dtype,
)

AMX = frozenset({"avx2", "avx512f", "amx_tile", "amx_bf16"})
AVX2 = frozenset({"avx", "avx2", "fma"})


@pytest.mark.parametrize(
    ("request_", "cuda", "cuda_bf16", "flags", "expected"),
    [
        ("auto", True, True, AVX2, "bf16"),
        ("auto", True, False, AVX2, "fp32"),
        ("auto", False, False, AMX, "bf16"),
        ("auto", False, False, frozenset({"avx512_bf16"}), "bf16"),
        ("auto", False, False, AVX2, "fp32"),
        ("fp32", True, True, AMX, "fp32"),
        ("bf16", False, False, AVX2, "bf16"),
        ("fp16", True, False, AVX2, "fp16"),
    ],
)
def test_choose_compute(
    request_: str, cuda: bool, cuda_bf16: bool, flags: frozenset[str], expected: str
) -> None:
    choice = choose_compute(request_, cuda_available=cuda, cuda_bf16=cuda_bf16, flags=flags)
    assert choice.name == expected
    assert choice.reason


def test_bf16_on_slow_cpu_warns_in_reason() -> None:
    choice = choose_compute("bf16", cuda_available=False, cuda_bf16=False, flags=AVX2)
    assert "slower" in choice.reason


def test_fp16_on_cpu_is_a_resource_error() -> None:
    with pytest.raises(ResourceError) as err:
        choose_compute("fp16", cuda_available=False, cuda_bf16=False, flags=AMX)
    assert "bf16" in err.value.hint and "fp32" in err.value.hint


def test_bf16_on_old_gpu_is_a_resource_error() -> None:
    with pytest.raises(ResourceError):
        choose_compute("bf16", cuda_available=True, cuda_bf16=False, flags=AVX2)


def test_unknown_compute_type() -> None:
    with pytest.raises(ConfigError, match="fp8"):
        choose_compute("fp8", cuda_available=False, cuda_bf16=False, flags=AVX2)


def test_cpu_flags_parsing(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: fpu avx2 amx_bf16 amx_tile\n\n")
    assert {"avx2", "amx_bf16"} <= cpu_flags(info)
    assert cpu_flags(tmp_path / "missing") == frozenset()


@pytest.mark.parametrize(
    ("request_", "flags", "speedup", "expected", "said"),
    [
        # the probe decides over the flags: a CPU reporting avx512_bf16 whose bf16 kernels are slow
        ("auto", frozenset({"avx512_bf16"}), 0.01, "fp32", "0.01x"),
        ("auto", AVX2, 4.4, "bf16", "4.40x"),
        ("auto", AMX, 1.1, "fp32", "1.10x"),
        ("bf16", frozenset({"avx512_bf16"}), 0.01, "bf16", "slower"),
        ("bf16", AVX2, 3.0, "bf16", "requested"),
    ],
)
def test_measured_cpu_speedup_decides_over_flags(
    request_: str, flags: frozenset[str], speedup: float, expected: str, said: str
) -> None:
    choice = choose_compute(
        request_, cuda_available=False, cuda_bf16=False, flags=flags, cpu_bf16_speedup=speedup
    )
    assert choice.name == expected
    assert said in choice.reason


def test_matmul_probe_measures_both_precisions() -> None:
    rate = matmul_rate(torch.float32, size=64, seconds=0.01)
    assert 1e6 < rate < 1e15  # a real FLOP/s figure, not a flag
    assert cpu_bf16_speedup() > 0


def test_this_machine_resolves_consistently() -> None:
    dtype = resolve_compute_dtype("auto")
    if torch.cuda.is_available():
        fast_bf16 = torch.cuda.is_bf16_supported()
    else:
        fast_bf16 = cpu_bf16_speedup() >= BF16_MIN_SPEEDUP
    assert dtype == (torch.bfloat16 if fast_bf16 else torch.float32)
    assert resolve_compute_dtype("fp32") == torch.float32
    assert describe_compute_choice("auto").startswith("compute precision ")


@pytest.mark.parametrize(
    ("setting", "fa2", "cuda", "expected"),
    [
        ("auto", True, True, "flash_attention_2"),
        ("auto", False, True, "sdpa"),
        ("auto", True, False, "sdpa"),
        ("sdpa", True, True, "sdpa"),
        ("disabled", True, True, "eager"),
        ("eager", True, True, "eager"),
        ("fa2", True, True, "flash_attention_2"),
    ],
)
def test_choose_attn_implementation(setting: str, fa2: bool, cuda: bool, expected: str) -> None:
    assert choose_attn_implementation(setting, fa2_available=fa2, cuda_available=cuda) == expected


def test_fa2_without_package_has_install_hint() -> None:
    with pytest.raises(ResourceError) as err:
        choose_attn_implementation("fa2", fa2_available=False, cuda_available=True)
    assert "flash-attn" in err.value.message and "pip install flash-attn" in err.value.hint


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only answer")
def test_cpu_attention_resolution() -> None:
    assert resolve_attn_implementation("auto") == "sdpa"
    assert resolve_attn_implementation("disabled") == "eager"
    with pytest.raises(ResourceError):
        resolve_attn_implementation("fa2")
