"""Stage kd under 2 processes (DDP over gloo, 2 x 1 thread): the same losses and eval metrics as 1 process.

The real command line, ``tunelab train examples/kd_lora_tiny.yaml ... --nproc-per-node 2``; each rank
loads the teacher. Compared with 1 process at the same global batch (batch 4 x accumulation 2): accelerate
deals one sampler's batches round-robin to the ranks, so every micro-batch (and its padding) is the one
the 1-process run sees, and the only difference left is the order of floating-point sums (DDP's
all-reduce vs accumulation, per-rank partial sums of the logged figures), a few ulp in fp32: hence the
same relative tolerance as the sft comparison (tests/train/test_ddp.py), 1e-5.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tunelab.runs import RunDir

EXAMPLE = Path(__file__).parents[2] / "examples" / "kd_lora_tiny.yaml"
# 64 samples, 10% held out: 6 eval samples in batches of 4, so under 2 processes rank 1's only eval
# batch is short and accelerate fills it with samples rank 0 has already scored
FAST = [
    "max_steps=4",
    "logging_steps=1",
    "per_device_train_batch_size=4",
    "per_device_eval_batch_size=4",
    "max_samples=64",
    "val_size=0.1",
    "cutoff_len=64",
    "eval_steps=4",
    "save_steps=100",
    "disable_tqdm=true",
    "compute_type=fp32",
    "lora_dropout=0",
    "plot_loss=false",
    "ddp_timeout=120",
]
RTOL = 1e-5
# (not eval_loss: the Trainer's own figure is a mean of per-batch means, and the batch accelerate fills up
# under 2 processes is another batch than 1 process's short last one)
EVAL_KEYS = (
    "eval_kd_loss",
    "eval_ce_loss",
    "eval_top1_agreement",
    "eval_perplexity",
    "eval_teacher_perplexity",
)


def _train(
    out: Path, student: Path, teacher: Path, *args: str, nproc: int = 1
) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "tunelab", "train", str(EXAMPLE), *FAST, f"output_dir={out}"]
    command += [f"model_name_or_path={student}", f"teacher_model_name_or_path={teacher}", *args]
    if nproc > 1:
        command += ["--nproc-per-node", str(nproc)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)


@pytest.mark.slow
@pytest.mark.ci
def test_kd_under_two_processes_logs_and_evaluates_what_one_process_does(
    tiny_model_dir: Path, tiny_qwen2_dir: Path, tmp_path: Path
) -> None:
    two = _train(tmp_path / "two", tiny_model_dir, tiny_qwen2_dir, nproc=2)
    assert two.returncode == 0, two.stderr[-4000:]
    one = _train(tmp_path / "one", tiny_model_dir, tiny_qwen2_dir, "gradient_accumulation_steps=2")
    assert one.returncode == 0, one.stderr[-4000:]

    run_two, run_one = RunDir(tmp_path / "two"), RunDir(tmp_path / "one")
    rows_two = [r for r in run_two.read_log() if "loss" in r]
    rows_one = [r for r in run_one.read_log() if "loss" in r]
    assert [r["current_steps"] for r in rows_two] == [1, 2, 3, 4]  # one writer, one run directory
    for a, b in zip(rows_one, rows_two):
        for key in ("loss", "kd_loss", "ce_loss", "top1_agreement"):
            assert b[key] == pytest.approx(a[key], rel=RTOL), (a["current_steps"], key, a[key], b[key])
    m_two, m_one = run_two.read_metrics(), run_one.read_metrics()
    assert m_two["world_size"] == 2 and m_two["global_batch_size"] == m_one["global_batch_size"] == 8
    for key in EVAL_KEYS:
        assert m_two[key] == pytest.approx(m_one[key], rel=RTOL), (key, m_one[key], m_two[key])
    evals = [r for r in run_two.read_log() if "eval_kd_loss" in r]
    assert len(evals) >= 1 and " ".join(two.stderr.split()).count("done:") == 1
