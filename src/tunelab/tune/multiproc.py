"""A trial trained by several processes: ``tunelab train <trial config> --nproc-per-node N`` as a child.

`tune` and `sweep` run single-process trials inside the worker (train() in-process, with the
pruning callback). A multi-process trial needs its own launcher, so it runs the ordinary command
line in a subprocess and is judged from what it wrote into its run directory, exactly as
`runs compare` would read it. Optuna's pruner cannot reach into the child processes, so these
trials run to their end (the health monitor and early stopping still act inside them).
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from tunelab.config import RunConfig, dump_config
from tunelab.errors import ConfigError
from tunelab.runs.rundir import RunDir, atomic_write_text
from tunelab.train.runner import RunResult

__all__ = ["LAUNCH_LOG", "train_in_processes"]

LAUNCH_LOG = "launch.log"  # the child's console output, kept in the trial's run directory


def _last_error(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    tagged = [line for line in lines if line.startswith(("error:", "hint:"))]
    return " ".join(tagged[-2:]) if tagged else (lines[-1] if lines else "no output")


def train_in_processes(config: RunConfig, nproc_per_node: int, *, console: Any = None) -> RunResult:
    """Train ``config`` (its output_dir set) with ``nproc_per_node`` processes; the result as train() gives it.

    Raises ConfigError when the child refused the config, RuntimeError when it crashed (the message
    points at ``launch.log``); a health stop, early stop or interrupt comes back as the run's status.
    """
    run = RunDir(config.output.output_dir)
    run.create()
    config_file = run.path / "config.yaml"  # train() rewrites it with the resolved config
    atomic_write_text(config_file, dump_config(config))
    command = [
        sys.executable,
        "-m",
        "tunelab",
        "train",
        str(config_file),
        "--nproc-per-node",
        str(nproc_per_node),
    ]
    if console is not None:
        console.print(f"  {nproc_per_node} processes: {' '.join(command[1:])}", highlight=False, markup=False)
    with (run.path / LAUNCH_LOG).open("w", encoding="utf-8") as log:
        code = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=False).returncode
    output = (run.path / LAUNCH_LOG).read_text(encoding="utf-8", errors="replace")
    if code == 130:
        return RunResult(run.path, "interrupted", checkpoint=run.latest_checkpoint())
    if code == 2:
        raise ConfigError(_last_error(output), f"the trial's command and output: {run.path / LAUNCH_LOG}")
    metrics = run.read_metrics()
    if code not in (0, 3) or "status" not in metrics:
        raise RuntimeError(
            f"multi-process trial exited with code {code}: {_last_error(output)} (see {run.path / LAUNCH_LOG})"
        )
    reason = None
    if metrics["status"] != "finished":
        stops = [e for e in run.read_events() if e.get("action") == "stop"]
        reason = stops[-1]["message"] if stops else metrics["status"]
    return RunResult(
        run.path, metrics["status"], metrics=metrics, checkpoint=run.latest_checkpoint(), stop_reason=reason
    )
