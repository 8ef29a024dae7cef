"""Resume and overwrite in the web UI: Start decides before launching; the Runs tab resumes a run.

Handler level on real run directories; the job launcher records what it would run instead of
starting a training process (the browser test in test_e2e_resume.py trains for real).
"""

from __future__ import annotations

import json
import socket
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from tunelab.config import config_from_dict, dump_config
from tunelab.webui.context import UIContext
from tunelab.webui.jobs import Job, JobManager
from tunelab.webui.paths import PathGuard
from tunelab.webui.resume import resume_choices, resume_run
from tunelab.webui.tabs.runs import run_details
from tunelab.webui.tabs.train import start_training
from tunelab.webui.tensorboard import TensorBoardServer, _parse, tensorboard_servers

KEYS = ["model_name_or_path", "dataset", "output_dir", "resume_from_checkpoint", "overwrite_output_dir"]


class _RecordingJobs(JobManager):
    """A JobManager that records the `tunelab` command lines it is asked to run."""

    def __init__(self, state_dir: Path, cwd: Path) -> None:
        super().__init__(state_dir, cwd=cwd)
        self.started: list[list[str]] = []

    def start(self, kind: str, args: list[str], **kw: Any) -> Job:  # type: ignore[override]
        self.started.append(args)
        return Job(
            id=f"job-{len(self.started)}",
            kind=kind,
            argv=[sys.executable, "-m", "tunelab", *args],
            pid=0,
            log_path="",
            started=time.time(),
            run_dir=str(kw.get("run_dir")),
            status="finished",
        )

    def started_config(self) -> dict[str, Any]:
        """The config the last job would train (the YAML the UI wrote for it)."""
        return yaml.safe_load(Path(self.started[-1][1]).read_text(encoding="utf-8"))


def _ctx(tmp_path: Path) -> UIContext:
    ctx = UIContext(
        runs_dir=tmp_path / "runs",
        state_dir=tmp_path / "state",
        jobs=_RecordingJobs(tmp_path / "state", tmp_path),
        guard=PathGuard([tmp_path]),
    )
    ctx.fields = dict.fromkeys(KEYS)
    return ctx


def _checkpoint(run: Path, step: int) -> Path:
    """A complete, resumable checkpoint folder (trainer_state.json and RNG state, as the Trainer saves)."""
    ckpt = run / f"checkpoint-{step}"
    ckpt.mkdir(parents=True)
    (ckpt / "trainer_state.json").write_text(json.dumps({"global_step": step}), encoding="utf-8")
    (ckpt / "rng_state.pth").write_bytes(b"")
    return ckpt


def _interrupted_run(path: Path, *, report_to: str = "none", checkpoints: tuple[int, ...] = (5, 10)) -> Path:
    """A run directory as an aborted `tunelab train` leaves it: resolved config, log, checkpoints."""
    config = config_from_dict(
        {
            "model_name_or_path": "tiny:llama",
            "dataset": "identity_en",
            "output_dir": str(path),
            "max_steps": 40,
            "report_to": report_to,
        }  # fmt: skip
    )
    path.mkdir(parents=True)
    (path / "config.yaml").write_text(dump_config(config), encoding="utf-8")
    for step in checkpoints:
        _checkpoint(path, step)
    with (path / "trainer_log.jsonl").open("w", encoding="utf-8") as log:
        for step in range(1, 11):
            log.write(json.dumps({"current_steps": step, "total_steps": 40, "loss": 5.0 - step / 10}) + "\n")
    (path / "events.jsonl").write_text(
        json.dumps({"time": "2026-12-02T04:00:00", "kind": "interrupted", "message": "Ctrl-C"}) + "\n"
    )
    return path


def _form(run: Path, resume: str | None = "none", overwrite: bool = False) -> list[Any]:
    return ["tiny:llama", "identity_en", str(run), resume, overwrite]


def test_start_on_a_run_with_neither_resume_nor_overwrite_names_the_dir_and_both_controls(
    tmp_path: Path,
) -> None:
    ctx = _ctx(tmp_path)
    run = _interrupted_run(tmp_path / "runs" / "r1")
    job, _, html = start_training(ctx, "en", _form(run))
    assert job is None and ctx.jobs.started == []  # refused before anything was launched
    assert str(run) in html and "checkpoints up to checkpoint-10" in html
    assert "“Resume” to “auto: last checkpoint”" in html and "“Overwrite output dir”" in html
    _, _, html_zh = start_training(ctx, "zh", _form(run))
    assert "断点续训" in html_zh and "覆盖输出目录" in html_zh and "截至 checkpoint-10 的检查点" in html_zh

    (run / "metrics.json").write_text(json.dumps({"train_runtime": 3.0, "global_step": 40}))
    _, _, html = start_training(ctx, "en", _form(run))
    assert "already holds a finished run" in html


def test_start_with_resume_auto_continues_from_the_last_checkpoint(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    run = _interrupted_run(tmp_path / "runs" / "r1")
    job, output_dir, html = start_training(ctx, "en", _form(run, "auto"))
    assert job == "job-1" and output_dir == str(run) and "Started" in html
    config = ctx.jobs.started_config()
    assert config["resume_from_checkpoint"] == "auto" and config["output_dir"] == str(run)
    assert config["overwrite_output_dir"] is False


def test_start_with_a_chosen_checkpoint_and_a_bad_one(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    run = _interrupted_run(tmp_path / "runs" / "r1")
    job, _, _ = start_training(ctx, "en", _form(run, str(run / "checkpoint-5")))
    assert job is not None and ctx.jobs.started_config()["resume_from_checkpoint"] == str(
        run / "checkpoint-5"
    )
    (run / "checkpoint-10" / "rng_state.pth").unlink()  # weights only: cannot resume exactly
    job, _, html = start_training(ctx, "en", _form(run, str(run / "checkpoint-10")))
    assert job is None and "holds weights only" in html
    job, _, html = start_training(ctx, "en", _form(run, str(tmp_path / "nowhere")))
    assert job is None and "no checkpoint there" in html


def test_start_with_overwrite_starts_clean_and_both_choices_are_refused(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    run = _interrupted_run(tmp_path / "runs" / "r1")
    job, _, _ = start_training(ctx, "en", _form(run, "none", overwrite=True))
    config = ctx.jobs.started_config()
    assert (
        job is not None
        and config["overwrite_output_dir"] is True
        and config["resume_from_checkpoint"] is None
    )
    job, _, html = start_training(ctx, "en", _form(run, "auto", overwrite=True))
    assert job is None and "not both" in html


def test_a_new_output_dir_starts_whatever_resume_says(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    for resume in ("none", "", "auto"):
        job, _, _ = start_training(ctx, "en", _form(tmp_path / "runs" / f"new-{resume}", resume))
        assert job is not None


def test_resume_choices_list_the_output_dirs_checkpoints(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    assert resume_choices(ctx, "en", None) == [("none: a new run", "none"), ("auto: last checkpoint", "auto")]
    _interrupted_run(tmp_path / "runs" / "r1")
    (tmp_path / "runs" / "r1" / "checkpoint-12").mkdir()  # torn: no trainer_state.json, not offered
    choices = resume_choices(ctx, "zh", "runs/r1")  # relative to the folder the jobs run in
    assert choices == [
        ("无：新的运行", "none"),
        ("auto：最新检查点（checkpoint-10）", "auto"),
        ("checkpoint-10", "runs/r1/checkpoint-10"),
        ("checkpoint-5", "runs/r1/checkpoint-5"),
    ]


def test_runs_tab_resumes_an_interrupted_run_with_its_own_config(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    run = _interrupted_run(tmp_path / "runs" / "r1")
    details, resumable = run_details(ctx, "en", "r1")
    assert resumable and "interrupted" in details and "checkpoint-10" in details
    job, html = resume_run(ctx, "en", "r1")
    assert job == "job-1" and "from checkpoint-10" in html
    config = ctx.jobs.started_config()
    assert config["resume_from_checkpoint"] == "auto" and config["max_steps"] == 40
    assert Path(config["output_dir"]) == run.resolve()


def test_runs_tab_refuses_finished_runs_and_runs_without_a_checkpoint(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    bare = _interrupted_run(tmp_path / "runs" / "bare", checkpoints=())
    assert run_details(ctx, "en", "bare")[1] is False
    job, html = resume_run(ctx, "en", "bare")
    assert job is None and "no checkpoint to resume from" in html
    done = _interrupted_run(tmp_path / "runs" / "done")
    (done / "metrics.json").write_text(json.dumps({"train_runtime": 3.0, "global_step": 40}))
    job, html = resume_run(ctx, "zh", "done")
    assert job is None and "已完成" in html
    assert resume_run(ctx, "en", None)[0] is None and ctx.jobs.started == [] and bare.is_dir()


def test_tensorboard_command_or_link_for_runs_that_log_to_it(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    _interrupted_run(tmp_path / "runs" / "plain")
    assert "tensorboard" not in run_details(ctx, "en", "plain")[0].lower()
    tb = _interrupted_run(tmp_path / "runs" / "tb", report_to="tensorboard")
    details = run_details(ctx, "en", "tb")[0]
    assert f"tensorboard --logdir {tb.resolve() / 'runs'}" in details  # no server here shows it


def test_a_running_tensorboard_is_found_from_the_process_table(tmp_path: Path) -> None:
    assert _parse(["/venv/bin/python", "/venv/bin/tensorboard", "--logdir", "runs", "--port=6123"]) == (
        TensorBoardServer(Path("runs"), 6123)
    )
    assert _parse(["python", "-m", "tensorboard.main", "--logdir=/r", "--host", "0.0.0.0"]).url == (
        "http://localhost:6006/"
    )
    assert _parse(["pip", "install", "tensorboard"]) is None and _parse(["python", "train.py"]) is None
    with socket.socket() as listening:  # a port that answers, as a started server's does
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        proc = tmp_path / "proc"
        for pid, argv in (("11", ["tensorboard", "--logdir", str(tmp_path / "runs"), "--port", str(port)]),
                          ("12", ["tensorboard", "--logdir", str(tmp_path), "--port", "1"])):  # fmt: skip
            (proc / pid).mkdir(parents=True)
            (proc / pid / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
        (server,) = tensorboard_servers(proc)  # the one whose port does not answer is left out
    assert server.port == port and server.shows(tmp_path / "runs" / "tb")
    assert not server.shows(tmp_path / "elsewhere")
