"""Jobs of the web UI: `tunelab` CLI subprocesses (train, lr-find, tune, export, ...) it starts and watches.

The UI never trains in its own process: every job is ``python -m tunelab <command> ...``, the same
code path as the terminal. Job records are persisted (``jobs.json`` in the UI's state folder), so a
reloaded page, or a restarted UI, finds a running job again and re-attaches to its run directory.
Abort sends SIGINT: the trainer finishes its step, saves a checkpoint and exits with code 130.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tunelab.runs.rundir import RunDir, atomic_write_text

__all__ = ["Job", "JobManager", "status_from_run_dir", "status_of_exit"]

# exit codes of the tunelab CLI (see cli.py): 2 a TunelabError, 3 stopped by the health monitor,
# 130 interrupted with a checkpoint saved
_EXIT_STATUS = {0: "finished", 2: "failed", 3: "stopped", 130: "aborted"}
# metrics.json "status" of a run (train/runner.py) -> the job status its exit code would have given
_RUN_STATUS = {"finished": "finished", "early_stopped": "finished", "stopped": "stopped", "pruned": "stopped"}


def status_of_exit(returncode: int, *, abort_requested: bool = False, kind: str = "train") -> str:
    """Job status for a CLI exit code: finished, stopped, aborted or failed.

    Exit code 3 is the CLI's "ran, but the answer is no": a run the health monitor stopped, an
    estimate that does not fit (a result, so "finished"), a study without a successful trial.
    """
    if abort_requested and returncode in (130, -signal.SIGINT, 0):
        return "aborted" if returncode != 0 else "finished"
    if returncode == 3 and kind != "train":
        return "finished" if kind == "estimate" else "failed"
    return _EXIT_STATUS.get(returncode, "failed")


def status_from_run_dir(run_dir: str | Path, since: float) -> str | None:
    """How a job ended, read from its run directory's own files written after ``since``; None if unknown.

    A job started by an earlier UI process has no exit code here; the run directory still says
    whether it finished (metrics.json "status"), was stopped, or was interrupted with a checkpoint
    (an "interrupted" event). Files older than the job belong to an earlier run in the same folder.
    """
    run = RunDir(run_dir)
    try:
        fresh = run.metrics_path.stat().st_mtime >= since
    except OSError:
        fresh = False
    status = run.read_metrics().get("status") if fresh else None
    if status is not None:
        return _RUN_STATUS.get(str(status), "finished")
    for event in reversed(run.read_events()):
        try:
            when = time.mktime(time.strptime(str(event.get("time")), "%Y-%m-%dT%H:%M:%S"))
        except ValueError:
            continue
        if when < since - 1:  # event times have whole seconds
            break
        if event.get("kind") == "interrupted":
            return "aborted"
    return None


@dataclass
class Job:
    """One CLI subprocess: what ran, where its output goes, and how it ended."""

    id: str
    kind: str
    argv: list[str]
    pid: int
    log_path: str
    started: float
    run_dir: str | None = None
    status: str = "running"  # running | finished | stopped | aborted | failed | lost
    returncode: int | None = None
    ended: float | None = None
    abort_requested: bool = False
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def running(self) -> bool:
        return self.status == "running"

    @property
    def command_line(self) -> str:
        """The job as the user would type it (tunelab ...)."""
        import shlex

        return " ".join(["tunelab", *(shlex.quote(a) for a in self.argv[3:])])


class JobManager:
    """Start, watch, abort and remember CLI jobs; safe to share between the UI's worker threads."""

    def __init__(
        self, state_dir: str | Path, *, cwd: str | Path | None = None, env: dict[str, str] | None = None
    ):
        self.state_dir = Path(state_dir)
        self.cwd = Path(cwd) if cwd else Path.cwd()
        self.extra_env = dict(env or {})
        self._lock = threading.RLock()
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._jobs: dict[str, Job] = self._load()

    # ---- persistence ----------------------------------------------------------------------------
    @property
    def state_file(self) -> Path:
        return self.state_dir / "jobs.json"

    def _load(self) -> dict[str, Job]:
        try:
            rows = json.loads(self.state_file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return {}
        jobs = {}
        for row in rows if isinstance(rows, list) else []:
            try:
                job = Job(**row)
            except TypeError:  # a record from another tunelab version
                continue
            jobs[job.id] = job
        return jobs

    def _save(self) -> None:
        rows = [asdict(j) for j in self._jobs.values()][-200:]
        atomic_write_text(self.state_file, json.dumps(rows, indent=1, ensure_ascii=False))

    # ---- starting -------------------------------------------------------------------------------
    def start(
        self,
        kind: str,
        args: list[str],
        *,
        run_dir: str | Path | None = None,
        lang: str = "en",
        meta: dict[str, Any] | None = None,
        stdout_path: str | Path | None = None,
        env: dict[str, str] | None = None,
    ) -> Job:
        """Run ``tunelab <args>`` in the background; its output goes to a log file of its own.

        With ``stdout_path``, standard output (a command's machine-readable answer, e.g.
        ``estimate --json``) goes there and only standard error (progress) to the log. ``env`` adds
        variables for this job only (a secret such as HF_TOKEN, never written to jobs.json).
        """
        job_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        log_dir = self.state_dir / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / f"{kind}-{job_id}.log"
        argv = [sys.executable, "-m", "tunelab", *args]
        env = {
            **os.environ,
            **self.extra_env,
            **(env or {}),
            "PYTHONUNBUFFERED": "1",
            "TUNELAB_LANG": lang,
            "NO_COLOR": "1",
            "COLUMNS": "120",
        }
        with open(log_path, "wb") as log, open(stdout_path or os.devnull, "wb") as answer:
            # a session of its own: Ctrl-C in the UI's terminal does not reach the job, and the job
            # outlives a UI restart (the new UI re-attaches through jobs.json)
            proc = subprocess.Popen(
                argv,
                cwd=self.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=answer if stdout_path else log,
                stderr=log if stdout_path else subprocess.STDOUT,
                start_new_session=True,
            )
        job = Job(
            id=job_id,
            kind=kind,
            argv=argv,
            pid=proc.pid,
            log_path=str(log_path),
            started=time.time(),
            run_dir=str(run_dir) if run_dir is not None else None,
            meta=dict(meta or {}),
        )
        with self._lock:
            self._procs[job_id] = proc
            self._jobs[job_id] = job
            self._save()
        return job

    # ---- watching -------------------------------------------------------------------------------
    def get(self, job_id: str | None) -> Job | None:
        """The job, its status refreshed (None for an unknown id)."""
        if not job_id:
            return None
        with self._lock:
            job = self._jobs.get(job_id)
            if job is not None:
                self._refresh(job)
            return job

    def jobs(self, kind: str | None = None) -> list[Job]:
        """Jobs of ``kind`` (all kinds when None), oldest first, statuses refreshed."""
        with self._lock:
            found = [j for j in self._jobs.values() if kind is None or j.kind == kind]
            for job in found:
                self._refresh(job)
            return found

    def latest(self, kind: str | None = None, *, running: bool = False) -> Job | None:
        """The most recent job of ``kind`` (only a running one with ``running=True``)."""
        found = [j for j in self.jobs(kind) if j.running or not running]
        return found[-1] if found else None

    def _refresh(self, job: Job) -> None:
        if not job.running:
            return
        proc = self._procs.get(job.id)
        if proc is not None:
            code = proc.poll()
            if code is None:
                return
            self._finish(job, code)
            return
        if not _alive(job.pid):  # started by an earlier UI process: its exit code is gone
            found = status_from_run_dir(job.run_dir, job.started) if job.run_dir else None
            job.status, job.ended = found or "lost", time.time()
            self._save()

    def _finish(self, job: Job, code: int) -> None:
        job.returncode = code
        job.status = status_of_exit(code, abort_requested=job.abort_requested, kind=job.kind)
        job.ended = time.time()
        self._procs.pop(job.id, None)
        self._save()

    def wait(self, job_id: str, timeout: float | None = None) -> Job:
        """Block until the job ends (or ``timeout`` seconds pass); returns it refreshed."""
        with self._lock:
            proc = self._procs.get(job_id)
        if proc is not None:
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        else:
            deadline = time.monotonic() + (timeout if timeout is not None else 1e9)
            while time.monotonic() < deadline:
                job = self.get(job_id)
                if job is None or not job.running:
                    break
                time.sleep(0.2)
        job = self.get(job_id)
        assert job is not None
        return job

    def log_tail(self, job: Job | None, max_chars: int = 6000) -> str:
        """The end of a job's output (what the terminal would show)."""
        if job is None:
            return ""
        try:
            with open(job.log_path, "rb") as handle:
                handle.seek(0, os.SEEK_END)
                size = handle.tell()
                handle.seek(max(0, size - max_chars))
                text = handle.read().decode("utf-8", errors="replace")
        except OSError:
            return ""
        # rich progress bars redraw with carriage returns: keep only what the last redraw shows
        return "\n".join(line.rsplit("\r", 1)[-1] for line in text.splitlines())

    # ---- stopping -------------------------------------------------------------------------------
    def abort(self, job_id: str) -> bool:
        """Ask a running job to stop gracefully (SIGINT: finish the step, save a checkpoint, exit)."""
        with self._lock:
            job = self.get(job_id)
            if job is None or not job.running:
                return False
            job.abort_requested = True
            self._save()
            try:
                os.kill(job.pid, signal.SIGINT)
            except ProcessLookupError:
                return False
            return True

    def abort_all(self) -> None:
        """Abort every running job (used when the UI shuts down in tests)."""
        for job in self.jobs():
            if job.running:
                self.abort(job.id)


def _alive(pid: int) -> bool:
    """Whether ``pid`` is still a tunelab process (a reused pid of another program does not count)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        try:
            os.kill(pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True
    if stat.split(")")[-1].split()[0] == "Z":
        return False
    return b"tunelab" in cmdline
