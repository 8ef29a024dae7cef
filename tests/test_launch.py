"""`tunelab train --nproc-per-node N`: the launch plan from flags and LLaMA-Factory's variables."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tunelab.errors import ConfigError
from tunelab.launch import _describe_failures, plan_launch, torchrun_args


def test_one_process_trains_in_place_and_a_launched_rank_never_relaunches(monkeypatch) -> None:
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert plan_launch(env={}) is None
    assert plan_launch(nproc_per_node=1, env={}) is None
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert plan_launch(nproc_per_node=2, env={}) is None  # torchrun started us: train here


def test_flags_and_llamafactory_variables_make_the_same_plan(monkeypatch) -> None:
    monkeypatch.delenv("RANK", raising=False)
    flags = plan_launch(
        nproc_per_node=2, nnodes=2, node_rank=1, master_addr="10.0.0.1", master_port=29500, env={}
    )
    env = {"FORCE_TORCHRUN": "1", "NPROC_PER_NODE": "2", "NNODES": "2", "NODE_RANK": "1"}
    env |= {"MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29500"}
    assert plan_launch(env=env) == flags
    assert flags is not None and flags.world_size == 4
    args = torchrun_args(flags, ["train", "cfg.yaml", "lr=1"])
    assert args[:5] == [
        "--nnodes=2",
        "--node-rank=1",
        "--nproc-per-node=2",
        "--master-addr=10.0.0.1",
        "--master-port=29500",
    ]
    assert args[-5:] == ["--module", "tunelab", "train", "cfg.yaml", "lr=1"]
    # FORCE_TORCHRUN alone launches one process per node, on a free local port
    forced = plan_launch(env={"FORCE_TORCHRUN": "true"})
    assert forced is not None and forced.nproc_per_node == 1 and forced.master_port > 0


@pytest.mark.parametrize(
    ("kwargs", "env", "match"),
    [
        ({"nnodes": 2, "master_port": 29500}, {}, "needs the address of the node with rank 0"),
        ({"nnodes": 2, "master_addr": "10.0.0.1"}, {}, "needs a port every node agrees on"),
        (
            {"nnodes": 2, "node_rank": 2, "master_addr": "a", "master_port": 1},
            {},
            "node rank 2 is out of range",
        ),
        ({}, {"NPROC_PER_NODE": "two"}, "NPROC_PER_NODE='two' is not a whole number"),
        ({"nproc_per_node": 0}, {}, "--nproc-per-node=0 must be at least 1"),
    ],
)
def test_a_launch_that_cannot_meet_says_what_to_add(monkeypatch, kwargs, env, match) -> None:
    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(ConfigError, match=match):
        plan_launch(**kwargs, env=env)


def _failure(code: int, pid: int = 7, local_rank: int = 1) -> SimpleNamespace:
    import signal

    name = signal.Signals(-code).name if code < 0 else ""
    return SimpleNamespace(exitcode=code, pid=pid, local_rank=local_rank, signal_name=lambda: name)


def test_rank_exit_codes_become_the_command_exit_code_and_a_dead_rank_is_named() -> None:
    assert _describe_failures({0: _failure(3)})[0] == 3  # health stop on every rank
    # rank 1 ended first with 3; the launcher then terminated rank 0, which had finished its part
    assert _describe_failures({0: _failure(-15, local_rank=0), 1: _failure(3)})[0] == 3
    assert _describe_failures({0: _failure(130), 1: _failure(130)})[0] == 130
    code, message = _describe_failures({1: _failure(-9, pid=4242)})
    assert code == 1
    assert "rank 1 (pid 4242, local rank 1) was killed by SIGKILL" in message
    assert "resume_from_checkpoint=auto" in message
    # the survivor ended on "lost contact" (exit code 2): the dead rank is still the one named
    code, message = _describe_failures({0: _failure(2, pid=1, local_rank=0), 1: _failure(-9, pid=4242)})
    assert code == 1 and "rank 1 (pid 4242" in message and "rank 0" not in message
    code, message = _describe_failures({0: _failure(-15, local_rank=0), 1: _failure(1, pid=4242)})
    assert "rank 1 (pid 4242, local rank 1) exited with code 1" in message and "rank 0" not in message
