"""The Train tab's devices group: the same command line and config key as the CLI, without a browser."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from tunelab.webui.context import UIContext
from tunelab.webui.devices import Devices
from tunelab.webui.jobs import JobManager
from tunelab.webui.paths import PathGuard, default_roots
from tunelab.webui.tabs.train import preview_command, start_training


def _ctx(tmp_path: Path, model: Path) -> UIContext:
    runs, state = tmp_path / "runs", tmp_path / "state"
    return UIContext(
        runs_dir=runs, state_dir=state, jobs=JobManager(state, cwd=tmp_path),
        guard=PathGuard(default_roots(runs, [state, tmp_path, model.parent])),
    )  # fmt: skip


def _form(model: Path, **extra: object) -> list[object]:
    """Handler values of a form with no widgets: everything travels in the loaded-config extras."""
    config = {
        "model_name_or_path": str(model), "dataset": ["instruct_en"], "dataset_dir": "builtin",
        "template": "chatml", "max_steps": 2, "cutoff_len": 64, "val_size": 0, "eval_strategy": "no",
        "compute_type": "fp32", "plot_loss": False, "disable_tqdm": True, **extra,
    }  # fmt: skip
    return [config]


def test_devices_become_launch_flags_and_the_preset_key(tiny_model_dir: Path, tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, tiny_model_dir)
    devices = Devices.from_widgets([2, 1, "z3", True])
    text, line, _ = preview_command(ctx, "en", _form(tiny_model_dir), devices)
    assert yaml.safe_load(text)["deepspeed"] == "z3_offload"
    assert line.startswith("tunelab train") and line.endswith("--nproc-per-node 2")
    assert "deepspeed=z3_offload" in line
    _, two_nodes, _ = preview_command(ctx, "zh", _form(tiny_model_dir), Devices(8, 2, "z2"))
    assert two_nodes.endswith("--nproc-per-node 8 --nnodes 2") and "deepspeed=z2" in two_nodes
    _, plain, _ = preview_command(ctx, "en", _form(tiny_model_dir), Devices())
    assert "--nproc" not in plain and "deepspeed" not in plain


def test_an_impossible_choice_is_refused_before_any_job(tiny_model_dir: Path, tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, tiny_model_dir)
    job, _, status = start_training(ctx, "en", _form(tiny_model_dir), Devices(2, 1, "z0", True))
    assert job is None and "no offload" in status
    job, _, status = start_training(ctx, "zh", _form(tiny_model_dir), Devices(1, 1, "none", True))
    assert job is None and "DeepSpeed" in status


@pytest.mark.slow
@pytest.mark.ci
def test_start_runs_the_cli_command_with_two_processes(tiny_model_dir: Path, tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, tiny_model_dir)
    form = _form(tiny_model_dir, output_dir=str(tmp_path / "runs" / "ds"))
    job_id, out, _ = start_training(ctx, "en", form, Devices(2, 1, "z2"))
    job = ctx.jobs.get(job_id)
    assert job is not None and "train" in job.command_line and "--nproc-per-node 2" in job.command_line
    config = yaml.safe_load(next((tmp_path / "state" / "configs").glob("*.yaml")).read_text())
    assert config["deepspeed"] == "z2"
    deadline = time.time() + 900
    while ctx.jobs.get(job_id).running and time.time() < deadline:
        time.sleep(2)
    assert ctx.jobs.get(job_id).status == "finished", ctx.jobs.log_tail(ctx.jobs.get(job_id))
    assert (Path(out) / "adapter_model.safetensors").is_file()
