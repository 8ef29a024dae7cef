"""infer_backend: vllm / sglang are handed the model where installed, refused clearly elsewhere."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tunelab.config import config_from_dict
from tunelab.errors import ConfigError, ResourceError
from tunelab.infer import external


@pytest.mark.parametrize("backend", ["vllm", "sglang"])
def test_missing_backend_names_package_gpu_and_default(backend: str) -> None:
    with pytest.raises(ResourceError) as info:
        external.check_backend(backend)
    text = f"{info.value.message} {info.value.hint}"
    assert backend in text and "GPU" in text and "infer_backend: huggingface" in text


def test_cli_refuses_before_loading(tmp_path: Path) -> None:
    from tunelab.cli import app

    result = CliRunner().invoke(app, ["api", "--model", str(tmp_path), "infer_backend=vllm"])
    assert result.exit_code == 2 and "pip install vllm" in result.output
    bad = CliRunner().invoke(app, ["api", "--model", "tiny:llama", "--max-batch-size", "0"])
    assert bad.exit_code == 2 and "--max-batch-size" in bad.output


def test_commands_carry_model_adapters_address_and_key(tmp_path: Path) -> None:
    model, adapter = tmp_path / "model", tmp_path / "adapter"
    config = config_from_dict(
        {"model_name_or_path": str(model), "adapter_name_or_path": str(adapter), "infer_backend": "vllm"}
    )
    vllm = external.backend_command(config, host="127.0.0.1", port=8001, api_key="k", model_id="served")
    assert vllm[1:3] == ["-m", "vllm.entrypoints.openai.api_server"] and str(model) in vllm
    assert vllm[vllm.index("--port") + 1] == "8001" and vllm[vllm.index("--api-key") + 1] == "k"
    assert "--enable-lora" in vllm and f"adapter0={adapter}" in vllm and "served" in vllm
    sglang = external.backend_command(
        config.model_copy(update={"model": config.model.model_copy(update={"infer_backend": "sglang"})}),
        host="127.0.0.1", port=8002, api_key=None, model_id=None,
    )  # fmt: skip
    assert sglang[1:3] == ["-m", "sglang.launch_server"] and "--api-key" not in sglang
    tiny = config_from_dict({"model_name_or_path": "tiny:llama", "infer_backend": "vllm"})
    with pytest.raises(ConfigError, match="model directories"):
        external.backend_command(tiny, host="127.0.0.1", port=1, api_key=None, model_id=None)
