"""`tunelab estimate`: breakdown, fit verdict, presets without weights, measured probe on a tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from tunelab.cli import app
from tunelab.config import load_config
from tunelab.tune.estimate import estimate

runner = CliRunner()


def _config(tmp_path: Path, **values: object) -> Path:
    base = {"dataset": "instruct_en", "dataset_dir": "builtin", "template": "chatml", **values}
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(base), encoding="utf-8")
    return path


def test_estimate_measures_time_and_memory_on_this_machine(tiny_model_dir: Path, tmp_path: Path) -> None:
    config = load_config(
        _config(tmp_path, model_name_or_path=str(tiny_model_dir), per_device_train_batch_size=4)
    )
    report = estimate(config, probe_steps=2)
    assert report.fits and report.timing is not None and report.measured_peak is not None
    assert abs(report.memory.peak / report.measured_peak - 1) < 0.15
    timing = report.timing
    assert timing.micro_batches_per_epoch == -(-150 // 4)  # 150 training records, micro-batch 4
    assert timing.seconds_per_epoch > 0 and timing.tokens_per_second > 0
    assert report.setup.seq_len <= 64  # the longest instruct_en row, not cutoff_len (1024)


def test_presets_work_without_the_model(tmp_path: Path) -> None:
    cfg = _config(tmp_path, finetuning_type="full", cutoff_len=2048, per_device_train_batch_size=4)
    result = runner.invoke(
        app, ["estimate", str(cfg), "--model-config", "llama2-7b", "--gpu-mem", "24", "--json"]
    )
    assert result.exit_code == 3, result.output  # does not fit
    numbers = json.loads(result.stdout)
    assert numbers["total_params"] == 6_738_415_616 and not numbers["fits"]
    assert numbers["optimizer_states_bytes"] == 8 * 6_738_415_616
    lora = runner.invoke(
        app,
        ["estimate", str(cfg), "finetuning_type=lora", "gradient_checkpointing=true", "per_device_train_batch_size=1",
         "--model-config", "llama2-7b", "--gpu-mem", "24"],
        env={"COLUMNS": "200"},
    )  # fmt: skip
    assert lora.exit_code == 0, lora.output
    assert "fits" in lora.stdout and "memory only" in lora.stdout


def test_estimate_in_chinese(tmp_path: Path) -> None:
    cfg = _config(tmp_path, per_device_train_batch_size=2, cutoff_len=1024)  # fits this machine
    result = runner.invoke(
        app, ["estimate", str(cfg), "--model-config", "qwen2.5-0.5b", "--lang", "zh"], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    assert "优化器状态" in result.stdout and "放得下" in result.stdout


def test_python_api_names() -> None:
    import tunelab
    from tunelab.tune.advise import advise
    from tunelab.tune.find_batch import find_batch
    from tunelab.tune.lr_find import lr_find

    assert (tunelab.estimate, tunelab.advise, tunelab.find_batch, tunelab.lr_find) == (
        estimate,
        advise,
        find_batch,
        lr_find,
    )


def test_estimate_per_device_for_the_configured_engine(tmp_path: Path) -> None:
    """Full fine-tuning of 7B on 8 x 40 GB: DDP does not fit, `deepspeed: z3` does; the global batch is
    micro-batch x accumulation x devices."""
    cfg = _config(
        tmp_path, model_name_or_path="not-here", finetuning_type="full", cutoff_len=512, per_device_train_batch_size=2,
        gradient_accumulation_steps=4, gradient_checkpointing=True,
    )  # fmt: skip
    args = [
        "estimate",
        str(cfg),
        "--model-config",
        "llama2-7b",
        "--gpu-mem",
        "40",
        "--nproc-per-node",
        "8",
        "--json",
    ]
    ddp = runner.invoke(app, args)
    assert ddp.exit_code == 3, ddp.output
    numbers = json.loads(ddp.stdout)
    assert numbers["world_size"] == 8 and numbers["global_batch"] == 2 * 4 * 8
    assert numbers["engine"] == "DDP" and numbers["per_device_peak_bytes"] > numbers["budget_bytes"]
    zero3 = runner.invoke(app, [*args, "deepspeed=z3"])
    assert zero3.exit_code == 0, zero3.output
    z3 = json.loads(zero3.stdout)
    assert z3["engine"] == "ZeRO-3" and z3["fits"]
    assert z3["per_device_peak_bytes"] == z3["engines"]["ZeRO-3"]["peak_bytes"] < z3["peak_bytes"]
    assert z3["engines"]["ZeRO-3 + offload"]["cpu_bytes_per_node"] > 0
    table = runner.invoke(app, [*args[:-1], "deepspeed=z3", "--nnodes", "2"], env={"COLUMNS": "200"})
    assert "global batch 128" in table.stdout and "ZeRO-2 + offload" in table.stdout
    assert "16 device(s)" in table.stdout


def test_fsdp_is_estimated_as_the_matching_zero_stage(tmp_path: Path) -> None:
    cfg = _config(tmp_path, model_name_or_path="not-here", finetuning_type="full", fsdp="shard_grad_op")
    report = estimate(load_config(cfg), model_config="llama2-7b", gpu_mem=80, nproc_per_node=4, probe=False)
    assert report.device is not None and report.device.label == "ZeRO-2"
    assert any("FSDP" in en for en, _ in report.notes)
