"""`tunelab export`: merged LoRA and full models reload with plain transformers and match the source."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors import safe_open
from transformers import AutoModelForCausalLM, AutoTokenizer

from tunelab.config import config_from_dict
from tunelab.errors import ConfigError, ResourceError
from tunelab.export import export_model
from tunelab.export.save import shard_bytes
from tunelab.export.verify import verify_export
from tunelab.train import train

PROMPT = "<|im_start|>user\nWhat is a learning rate?<|im_end|>\n<|im_start|>assistant\n"


def _train(model_dir: Path, out: Path, finetuning_type: str) -> Path:
    config = config_from_dict(
        {
            "model_name_or_path": str(model_dir),
            "stage": "sft",
            "finetuning_type": finetuning_type,
            "dataset": "instruct_en",
            "dataset_dir": "builtin",
            "template": "chatml",
            "cutoff_len": 64,
            "max_samples": 64,
            "per_device_train_batch_size": 8,
            "learning_rate": 2e-2 if finetuning_type == "lora" else 2e-3,
            "max_steps": 6,
            "logging_steps": 3,
            "save_steps": 100,
            "output_dir": str(out),
            "compute_type": "fp32",
            "disable_tqdm": True,
            "plot_loss": False,
        }
    )
    assert train(config).status == "finished"
    return out


@pytest.fixture(scope="module")
def lora_run(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _train(tiny_model_dir, tmp_path_factory.mktemp("export") / "lora-run", "lora")


@pytest.fixture(scope="module")
def full_run(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _train(tiny_model_dir, tmp_path_factory.mktemp("export") / "full-run", "full")


def _logits(model: Any, tokenizer: Any, text: str = PROMPT) -> torch.Tensor:
    ids = tokenizer(text, return_tensors="pt").input_ids
    with torch.inference_mode():
        return model(input_ids=ids).logits[0].float()


def test_lora_merge_reload_matches_adapter_model(
    lora_run: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    from peft import PeftModel

    out = tmp_path / "merged"
    result = export_model(run=lora_run, overrides=[f"export_dir={out}", "export_size=0.0005"])
    assert result.verification is not None and result.verification.passed
    assert result.verification.max_abs_diff < 1e-3

    # independent check: plain transformers + peft on one side, the export alone on the other
    tokenizer = AutoTokenizer.from_pretrained(out)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    base_logits = _logits(base, tokenizer)
    adapted = PeftModel.from_pretrained(base, lora_run).eval()
    exported = AutoModelForCausalLM.from_pretrained(out).eval()
    assert not any(isinstance(m, torch.nn.Module) and "lora" in n for n, m in exported.named_modules())
    want, got = _logits(adapted, tokenizer), _logits(exported, tokenizer)
    assert (want - got).abs().max() < 1e-3
    # the adapter changed the model, so matching it is not the same as matching the base
    assert (want - base_logits).abs().max() > 100 * (want - got).abs().max()

    report = json.loads((out / "export_report.json").read_text())
    assert report["verification"]["max_abs_diff"] == result.verification.max_abs_diff
    assert report["source"]["finetuning_type"] == "lora" and report["format"] == "safetensors"
    assert "## Verification" in (out / "README.md").read_text()


def test_shard_count_follows_export_size(lora_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "sharded"
    result = export_model(
        run=lora_run, overrides=[f"export_dir={out}", "export_size=0.0005", "export_verify=false"]
    )
    limit = shard_bytes(0.0005)
    index = json.loads((out / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert shards == sorted(p.name for p in out.glob("*.safetensors")) == result.report["files"]
    assert result.n_shards == len(shards) >= math.ceil(index["metadata"]["total_size"] / limit) >= 2
    for shard in shards:
        with safe_open(str(out / shard), framework="pt") as handle:
            keys = list(handle.keys())
            size = sum(math.prod(handle.get_slice(k).get_shape()) * 4 for k in keys)  # fp32 tensors
        assert size <= limit or len(keys) == 1, f"{shard} holds {size} bytes in {len(keys)} tensors"
    model = AutoModelForCausalLM.from_pretrained(out)
    assert set(index["weight_map"]) == set(model.state_dict())

    single = tmp_path / "single"
    export_model(run=lora_run, overrides=[f"export_dir={single}", "export_verify=false"])
    assert [p.name for p in single.glob("*.safetensors")] == ["model.safetensors"]
    assert not (single / "model.safetensors.index.json").exists()


def test_legacy_bin_only_on_request(lora_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "legacy"
    result = export_model(
        run=lora_run, overrides=[f"export_dir={out}", "export_legacy_format=true", "export_size=0.001"]
    )
    assert result.verification is not None and result.verification.passed
    assert not list(out.glob("*.safetensors"))
    bins = sorted(p.name for p in out.glob("*.bin"))
    assert len(bins) == result.n_shards >= 2 and all(b.startswith("pytorch_model-") for b in bins)
    index = json.loads((out / "pytorch_model.bin.index.json").read_text())
    assert sorted(set(index["weight_map"].values())) == bins


def test_full_model_export_in_bf16_with_hub_id(full_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "full-bf16"
    result = export_model(
        run=full_run,
        overrides=[f"export_dir={out}", "export_dtype=bfloat16", "export_hub_model_id=me/tiny-sft"],
        push=False,  # the push itself: tests/export/test_hub.py
    )
    assert result.verification is not None and result.verification.passed
    assert result.report["source"]["adapters"] == [] and result.report["dtype"] == "bf16"
    assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"
    with safe_open(str(out / "model.safetensors"), framework="pt") as handle:
        assert {handle.get_tensor(k).dtype for k in handle.keys()} == {torch.bfloat16}
    assert result.report["hub_model_id"] == "me/tiny-sft"
    card = (out / "README.md").read_text()
    assert "# me/tiny-sft" in card and f"hf upload me/tiny-sft {out} ." in card
    # tokenizer, chat template and generation config travel with the weights
    tokenizer = AutoTokenizer.from_pretrained(out)
    text = tokenizer.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False)
    assert text.startswith("<|im_start|>user\nHi<|im_end|>")
    generation = json.loads((out / "generation_config.json").read_text())
    assert generation["eos_token_id"] == tokenizer.convert_tokens_to_ids("<|im_end|>")


def test_verification_fails_against_another_model(
    lora_run: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "merged"
    export_model(run=lora_run, overrides=[f"export_dir={out}", "export_verify=false"])
    tokenizer = AutoTokenizer.from_pretrained(out)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    result = verify_export(out, base, [tokenizer.encode(PROMPT)], precision="fp32")
    assert not result.passed and result.max_abs_diff > result.tolerance


def test_quantized_export_refuses_without_gpu(lora_run: Path, tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    out = tmp_path / "q"
    with pytest.raises(ResourceError, match="CUDA GPU") as info:
        overrides = [f"export_dir={out}", "export_quantization_bit=4", "export_quantization_method=bnb"]
        export_model(run=lora_run, overrides=overrides)
    assert "export_quantization_bit" in info.value.hint
    assert not out.exists()


def test_refuses_to_overwrite_what_is_not_an_export(lora_run: Path, tmp_path: Path) -> None:
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not a tunelab export"):
        export_model(run=lora_run, overrides=[f"export_dir={foreign}"])
    with pytest.raises(ConfigError, match="source model's own directory"):
        export_model(run=lora_run, overrides=[f"export_dir={lora_run}"])
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_export_keys_are_validated() -> None:
    base = {"model_name_or_path": "tiny:llama"}
    assert config_from_dict({**base, "export_dtype": "float16"}).export.export_dtype == "fp16"
    with pytest.raises(ConfigError, match="owner/name"):
        config_from_dict({**base, "export_hub_model_id": "no slash"})
    with pytest.raises(ConfigError, match="legacy"):
        config_from_dict({**base, "export_quantization_bit": 8, "export_legacy_format": True})
    with pytest.raises(ConfigError, match="export_size"):
        config_from_dict({**base, "export_size": 0})


def _console() -> Any:
    import io

    from rich.console import Console

    return Console(file=io.StringIO(), width=200, color_system=None)


def test_export_device_cpu_and_auto(lora_run: Path, tmp_path: Path) -> None:
    console = _console()
    on_cpu = export_model(
        run=lora_run,
        overrides=[f"export_dir={tmp_path / 'cpu'}", "export_device=cpu", "export_verify=false"],
        console=console,
    )
    assert (on_cpu.report["export_device"], on_cpu.report["device"]) == ("cpu", "cpu")
    assert on_cpu.report["quantization_method"] is None and on_cpu.report["calibration"] is None
    assert "no CUDA GPU" not in console.file.getvalue()

    console = _console()
    auto = export_model(
        run=lora_run, overrides=[f"export_dir={tmp_path / 'auto'}", "export_device=auto"], console=console
    )
    assert auto.verification is not None and auto.verification.passed
    said = console.file.getvalue()
    if torch.cuda.is_available():
        assert auto.report["device"].startswith("cuda")
    else:
        assert auto.report["device"] == "cpu" and "export_device=auto: no CUDA GPU found" in said
    assert f"on {auto.report['device']}" in said
    report = json.loads((tmp_path / "auto" / "export_report.json").read_text())
    assert (report["export_device"], report["device"]) == ("auto", auto.report["device"])
    assert (
        f"| exported on | {auto.report['device']} (export_device: auto) |"
        in (tmp_path / "auto" / "README.md").read_text()
    )


GPTQ_OVERRIDES = [
    "export_quantization_bit=4",
    "export_quantization_method=gptq",
    "export_quantization_dataset=identity_en",
    "export_quantization_nsamples=8",
    "export_quantization_maxlen=64",
]
HAS_GPTQ = all(importlib.util.find_spec(name) for name in ("optimum", "gptqmodel"))


@pytest.mark.skipif(HAS_GPTQ, reason="optimum and gptqmodel are installed here")
def test_gptq_export_refuses_before_any_work(lora_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "gptq"
    with pytest.raises(ResourceError, match="export_quantization_method: gptq needs") as info:
        export_model(run=lora_run, overrides=[f"export_dir={out}", *GPTQ_OVERRIDES])
    assert "pip install" in info.value.hint
    assert not out.exists() and not out.with_name("gptq.partial").exists()


@pytest.mark.skipif(not HAS_GPTQ, reason="needs optimum and gptqmodel (pip install 'tunelab[gptq]')")
def test_gptq_export_on_cpu(lora_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "gptq"
    result = export_model(run=lora_run, overrides=[f"export_dir={out}", "export_device=cpu", *GPTQ_OVERRIDES])
    assert result.report["quantization_method"] == "gptq" and result.report["device"] == "cpu"
    assert result.report["calibration"] == {
        "dataset": "identity_en",
        "n_samples": 8,
        "nsamples_requested": 8,
        "maxlen": 64,
    }
    quantization = json.loads((out / "config.json").read_text())["quantization_config"]
    assert quantization["bits"] == 4 and quantization["quant_method"] == "gptq"
    assert not quantization.get("dataset")  # the calibration texts are not shipped in config.json
    assert result.verification is not None and result.verification.argmax_agreement > 0.5
    assert "GPTQ 4-bit" in (out / "README.md").read_text()
