"""Where to see a run in TensorBoard: a link to a TensorBoard server that shows it, or the command.

Runs with ``report_to: tensorboard`` write event files to ``<run dir>/runs/`` (transformers'
default logging dir). The UI does not start TensorBoard itself; it looks for a running one (a
``tensorboard`` process on this machine whose ``--logdir`` holds the run and whose port answers)
and otherwise shows the exact command that starts one.
"""

from __future__ import annotations

import shlex
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "TensorBoardServer",
    "find_tensorboard",
    "logs_to_tensorboard",
    "tensorboard_command",
    "tensorboard_servers",
]

_DEFAULT_PORT = 6006


@dataclass(frozen=True)
class TensorBoardServer:
    """A running TensorBoard: what it shows and where it listens."""

    logdir: Path
    port: int
    host: str = "localhost"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def shows(self, run_dir: Path) -> bool:
        """Whether the run's event files are under this server's logdir."""
        logdir, run = self.logdir.resolve(), Path(run_dir).resolve()
        return run.is_relative_to(logdir) or logdir.is_relative_to(run)


def logs_to_tensorboard(report_to: object) -> bool:
    """Whether a config's ``report_to`` (a list, or a comma-separated string) includes tensorboard."""
    if isinstance(report_to, str):
        report_to = report_to.split(",")
    return isinstance(report_to, Iterable) and "tensorboard" in {str(r).strip() for r in report_to}


def tensorboard_command(run_dir: Path) -> str:
    """The command that shows the run in TensorBoard (its event files are in ``<run dir>/runs``)."""
    return f"tensorboard --logdir {shlex.quote(str(Path(run_dir).resolve() / 'runs'))}"


def _parse(argv: list[str]) -> TensorBoardServer | None:
    """The server a tensorboard command line starts (``tensorboard`` or ``python -m tensorboard.main``)."""
    starts = [i for i, a in enumerate(argv) if Path(a).name == "tensorboard" or a == "tensorboard.main"]
    if not starts:
        return None
    options: dict[str, str] = {}
    args = argv[starts[0] + 1 :]
    for i, arg in enumerate(args):
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            if not eq and i + 1 < len(args) and not args[i + 1].startswith("--"):
                value = args[i + 1]
            options[name] = value
    logdir = options.get("logdir") or options.get("logdir_spec", "").rpartition(":")[2]
    if not logdir:
        return None
    host = options.get("host") or "localhost"
    try:
        port = int(options.get("port") or _DEFAULT_PORT)
    except ValueError:
        return None
    return TensorBoardServer(Path(logdir), port, "localhost" if host in ("0.0.0.0", "::") else host)


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.3):
            return True
    except OSError:
        return False


def tensorboard_servers(proc: Path = Path("/proc")) -> list[TensorBoardServer]:
    """TensorBoard servers running on this machine (read from the process table) whose port answers."""
    found = []
    for entry in proc.glob("[0-9]*/cmdline"):
        try:
            argv = [a.decode(errors="replace") for a in entry.read_bytes().split(b"\0") if a]
        except OSError:
            continue
        server = _parse(argv)
        if server is not None and _answers(server.port):
            found.append(server)
    return found


def find_tensorboard(run_dir: Path) -> TensorBoardServer | None:
    """A running TensorBoard that shows ``run_dir``, or None."""
    return next((s for s in tensorboard_servers() if s.shows(run_dir)), None)
