"""``tunelab train --nproc-per-node N``: re-run the same command under torch's own launcher (torchrun).

The launcher process validates nothing beyond the config and starts N copies of
``python -m tunelab <same arguments>`` per machine through ``torch.distributed.run``; each copy
learns its rank from the environment (tunelab.distributed) and trains its share. A user's own
``torchrun -m tunelab train ...`` or ``accelerate launch -m tunelab train ...`` skips this module.

LLaMA-Factory's launch variables mean what they mean there: FORCE_TORCHRUN=1 launches even without
flags; NPROC_PER_NODE, NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT give the values the flags leave
unset. Exit codes of the ranks come back as one: 3 when the health monitor stopped the run (every
rank stops at the same step), 130 when it was interrupted, 2 for a config error; when a rank died
the message names it.
"""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tunelab.errors import ConfigError

__all__ = ["LaunchPlan", "plan_launch", "run_launch", "torchrun_args"]

_TRUE = ("1", "true", "yes", "y", "on")


@dataclass(frozen=True)
class LaunchPlan:
    """How many processes to start on this machine and how to meet the other machines."""

    nproc_per_node: int
    nnodes: int = 1
    node_rank: int = 0
    master_addr: str = "127.0.0.1"
    master_port: int = 29500
    # seconds a rank gets to save its checkpoint after Ctrl-C / SIGTERM before it is killed
    shutdown_timeout: int = 1800

    @property
    def world_size(self) -> int:
        return self.nproc_per_node * self.nnodes


def _int_setting(name: str, flag: int | None, env: Mapping[str, str], default: int, minimum: int) -> int:
    if flag is not None:
        value, source = flag, f"--{name.lower().replace('_', '-')}"
    elif env.get(name, "").strip():
        raw = env[name].strip()
        if not raw.isdigit():
            raise ConfigError(f"{name}={raw!r} is not a whole number", f"set {name} to e.g. {default or 1}")
        value, source = int(raw), name
    else:
        return default
    if value < minimum:
        raise ConfigError(
            f"{source}={value} must be at least {minimum}", f"set {source} to {minimum} or more"
        )
    return value


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def plan_launch(
    *,
    nproc_per_node: int | None = None,
    nnodes: int | None = None,
    node_rank: int | None = None,
    master_addr: str | None = None,
    master_port: int | None = None,
    shutdown_timeout: int = 1800,
    env: Mapping[str, str] | None = None,
) -> LaunchPlan | None:
    """The launch to make, or None to train in this process (one process asked, or already launched)."""
    from tunelab.distributed import is_launched

    env = os.environ if env is None else env
    if is_launched():
        return None  # we are one of the ranks torchrun / accelerate started
    forced = env.get("FORCE_TORCHRUN", "").strip().lower() in _TRUE
    n = _int_setting("NPROC_PER_NODE", nproc_per_node, env, 1, 1)
    nodes = _int_setting("NNODES", nnodes, env, 1, 1)
    if n == 1 and nodes == 1 and not forced:
        return None  # one process: train here, without a launcher
    node = _int_setting("NODE_RANK", node_rank, env, 0, 0)
    if node >= nodes:
        raise ConfigError(
            f"node rank {node} is out of range for {nodes} node(s)",
            f"give each machine its own --node-rank from 0 to {nodes - 1}",
        )
    addr = master_addr or env.get("MASTER_ADDR", "").strip() or "127.0.0.1"
    if (
        nodes > 1
        and addr in ("127.0.0.1", "localhost")
        and master_addr is None
        and not env.get("MASTER_ADDR")
    ):
        raise ConfigError(
            f"--nnodes {nodes} needs the address of the node with rank 0",
            "add --master-addr <IP of node 0> (the same on every node) and --master-port <free port>",
        )
    port = _int_setting("MASTER_PORT", master_port, env, 0, 1)
    if port == 0:
        if nodes > 1:
            raise ConfigError(
                f"--nnodes {nodes} needs a port every node agrees on",
                "add --master-port <free port on node 0>, e.g. --master-port 29500, on every node",
            )
        port = _free_port(addr)
    return LaunchPlan(n, nodes, node, addr, port, shutdown_timeout)


def torchrun_args(plan: LaunchPlan, argv: Sequence[str]) -> list[str]:
    """torch.distributed.run's command line that runs ``python -m tunelab <argv>`` per the plan."""
    return [
        f"--nnodes={plan.nnodes}",
        f"--node-rank={plan.node_rank}",
        f"--nproc-per-node={plan.nproc_per_node}",
        f"--master-addr={plan.master_addr}",
        f"--master-port={plan.master_port}",
        f"--shutdown-timeout={plan.shutdown_timeout}",
        "--module",
        "tunelab",
        *argv,
    ]


def _threads_note(plan: LaunchPlan) -> str:
    """Give each process its share of the CPU cores (OMP_NUM_THREADS) unless the user chose."""
    if os.environ.get("OMP_NUM_THREADS", "").strip():
        return f"each process uses OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']} CPU thread(s) (as set)"
    threads = max(1, (os.cpu_count() or 1) // plan.nproc_per_node)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    return (
        f"each process uses {threads} CPU thread(s): {plan.nproc_per_node} processes share "
        f"{os.cpu_count()} core(s) (set OMP_NUM_THREADS to choose)"
    )


def _describe_failures(failures: Mapping[int, Any]) -> tuple[int, str]:
    """(exit code, message) for the ranks that ended badly.

    A rank that crashed or was killed explains the others' ends, so it is named; otherwise the
    ranks ended on a decision they all took (health stop 3, interrupt 130, config error 2).
    """
    # ranks the launcher itself terminated (SIGTERM) once another one had ended are not the cause
    ended = {r: f for r, f in failures.items() if f.exitcode != -signal.SIGTERM}
    failures = ended or failures
    dead = {r: f for r, f in failures.items() if f.exitcode not in (2, 3, 130)}
    if not dead:
        codes = {r: f.exitcode for r, f in failures.items()}
        for wanted, what in (
            (3, "stopped by the health monitor"),
            (130, "interrupted"),
            (2, "stopped on an error"),
        ):
            if wanted in codes.values():
                ranks = sorted(r for r, c in codes.items() if c == wanted)
                return wanted, f"{what} (exit code {wanted} from rank(s) {ranks})"
    parts = []
    for r, failure in sorted(dead.items()):
        how = (
            f"was killed by {failure.signal_name()}"
            if failure.exitcode < 0
            else f"exited with code {failure.exitcode}"
        )
        parts.append(f"rank {r} (pid {failure.pid}, local rank {failure.local_rank}) {how}")
    return 1, "; ".join(
        parts
    ) + ": the launcher stopped the other ranks; resume with resume_from_checkpoint=auto"


def run_launch(plan: LaunchPlan, argv: Sequence[str], console: Any = None) -> int:
    """Start the ranks of this machine and wait for them; returns the exit code the command should end with."""
    from torch.distributed import run as torchrun
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    def say(text: str) -> None:
        if console is not None:
            console.print(text, markup=False, highlight=False)

    nodes = f" x {plan.nnodes} nodes (this is node {plan.node_rank})" if plan.nnodes > 1 else ""
    say(
        f"launching {plan.nproc_per_node} process(es){nodes} through torch.distributed.run, "
        f"rendezvous at {plan.master_addr}:{plan.master_port}; world size {plan.world_size}"
    )
    say(_threads_note(plan))
    args = torchrun.get_args_parser().parse_args(torchrun_args(plan, argv))
    try:
        torchrun.run(args)
    except ChildFailedError as exc:
        code, message = _describe_failures(exc.failures)
        say(message)
        return code
    except SignalException as exc:
        say(f"{exc.sigval.name} received: the ranks were asked to save a checkpoint and stop")
        return 130
    return 0
