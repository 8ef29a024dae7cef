"""The run directory: the contract between training, the web UI, comparisons and evaluation.

Writers use whole-file atomic replacement (config, metrics) or one-line appends with a flush
(logs, events), so a run killed at any moment leaves readable files; readers skip a torn last line.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["RunDir", "atomic_write_text"]

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old or the new file, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a torn last line from a killed writer
            continue
    return rows


def _is_complete(checkpoint: Path) -> bool:
    """The trainer writes trainer_state.json last; a parseable one means the save finished."""
    state = checkpoint / "trainer_state.json"
    try:
        json.loads(state.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    return True


class RunDir:
    """Read and write the files of one run directory (see DESIGN.md for the layout).

    In a multi-process run every rank holds a RunDir, but only the writer (global rank 0) writes:
    the others' writes are no-ops, so a run has one trainer_log.jsonl without duplicated rows.
    ``writer`` overrides that choice (tests, tools that write from any process).
    """

    def __init__(self, path: str | Path, *, writer: bool | None = None) -> None:
        from tunelab.distributed import is_writer

        self.path = Path(path)
        self.writer = is_writer() if writer is None else writer

    # paths -----------------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def log_path(self) -> Path:
        return self.path / "trainer_log.jsonl"

    @property
    def events_path(self) -> Path:
        return self.path / "events.jsonl"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.json"

    @property
    def plots_dir(self) -> Path:
        return self.path / "plots"

    # writing ---------------------------------------------------------------------------------
    def create(self) -> None:
        """Make the directory (and parents) if missing."""
        if self.writer:
            self.path.mkdir(parents=True, exist_ok=True)

    def write_config(self, yaml_text: str) -> None:
        if self.writer:
            atomic_write_text(self.config_path, yaml_text)

    def _append(self, path: Path, row: dict[str, Any]) -> None:
        if not self.writer:
            return
        self.path.mkdir(parents=True, exist_ok=True)
        line = json.dumps(row, ensure_ascii=False, allow_nan=True) + "\n"
        with path.open("a+b") as handle:
            # a writer killed mid-line leaves a torn last line: start ours on a fresh one, so the
            # readers (which skip unparsable lines) lose only the torn row, never the next one
            if handle.tell() > 0:
                handle.seek(-1, 2)
                if handle.read(1) != b"\n":
                    line = "\n" + line
            handle.write(line.encode("utf-8"))
            handle.flush()

    def write_log_row(self, row: dict[str, Any]) -> None:
        """Append one trainer_log.jsonl row (fields per DESIGN.md; absent when unknown)."""
        self._append(self.log_path, row)

    def write_event(self, kind: str, message: str, **data: Any) -> dict[str, Any]:
        """Append a decision taken during the run, with its reason, to events.jsonl."""
        event = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "kind": kind, "message": message, **data}
        self._append(self.events_path, event)
        return event

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        """Merge ``metrics`` into metrics.json (atomic)."""
        if not self.writer:
            return
        merged = {**self.read_metrics(), **metrics}
        atomic_write_text(self.metrics_path, json.dumps(merged, indent=2, ensure_ascii=False) + "\n")

    def truncate_log_after(self, step: int) -> None:
        """Drop log rows past ``step``: a resumed run rewrites them, so the curve has no duplicates."""
        if not self.writer:
            return
        rows = [r for r in self.read_log() if r.get("current_steps", 0) <= step]
        atomic_write_text(self.log_path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))

    # reading ---------------------------------------------------------------------------------
    def read_log(self) -> list[dict[str, Any]]:
        return _read_jsonl(self.log_path)

    def read_events(self) -> list[dict[str, Any]]:
        return _read_jsonl(self.events_path)

    def read_metrics(self) -> dict[str, Any]:
        if not self.metrics_path.is_file():
            return {}
        try:
            return json.loads(self.metrics_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            return {}

    def checkpoints(self) -> list[Path]:
        """Checkpoint folders, oldest step first, that hold a completed save."""
        found = []
        if self.path.is_dir():
            for child in self.path.iterdir():
                match = _CHECKPOINT.match(child.name)
                if match and child.is_dir() and _is_complete(child):
                    found.append((int(match.group(1)), child))
        return [p for _, p in sorted(found)]

    def latest_checkpoint(self) -> Path | None:
        ckpts = self.checkpoints()
        return ckpts[-1] if ckpts else None

    def is_finished(self) -> bool:
        """True when a training run completed here (final metrics written)."""
        return bool(self.read_metrics().get("train_runtime") is not None)
