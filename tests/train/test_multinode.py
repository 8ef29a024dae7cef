"""Two nodes for real: two network namespaces joined by a veth pair, one training process in each.

The namespaces see each other only through 10.231.0.1 <-> 10.231.0.2, so the rendezvous (torchrun's
static TCP store) and gloo's collectives really cross a network link. The test builds and removes
its namespaces itself and skips, saying why, where it may not create them (not root, no `ip`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .test_ddp import EXAMPLE, FAST, assert_same_curve, losses, tunelab_train

MASTER, WORKER = "10.231.0.1", "10.231.0.2"
PORT = 29631


def _ip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=False)


@pytest.fixture
def two_namespaces() -> Iterator[tuple[tuple[str, str], tuple[str, str]]]:
    """((namespace, veth) of node 0, (namespace, veth) of node 1), removed afterwards."""
    if shutil.which("ip") is None:
        pytest.skip("needs iproute2's `ip` to create network namespaces")
    if os.geteuid() != 0:
        pytest.skip("needs root (CAP_NET_ADMIN) to create network namespaces")
    tag = str(os.getpid() % 100000)
    nodes = ((f"tl{tag}n0", f"tl{tag}v0"), (f"tl{tag}n1", f"tl{tag}v1"))
    try:
        made = _ip("netns", "add", nodes[0][0])
        if made.returncode != 0:
            pytest.skip(f"cannot create a network namespace here: {made.stderr.strip()}")
        steps = [
            ("netns", "add", nodes[1][0]),
            ("link", "add", nodes[0][1], "type", "veth", "peer", "name", nodes[1][1]),
        ]
        for (ns, veth), address in zip(nodes, (MASTER, WORKER)):
            steps += [
                ("link", "set", veth, "netns", ns),
                ("-n", ns, "addr", "add", f"{address}/24", "dev", veth),
                ("-n", ns, "link", "set", veth, "up"),
                ("-n", ns, "link", "set", "lo", "up"),
            ]
        for step in steps:
            done = _ip(*step)
            if done.returncode != 0:
                pytest.skip(f"cannot set up the veth pair (ip {' '.join(step)}): {done.stderr.strip()}")
        yield nodes
    finally:
        for ns, _ in nodes:  # deleting a namespace also deletes the veth end inside it
            _ip("netns", "del", ns)


@pytest.mark.slow
@pytest.mark.ci
def test_two_nodes_over_a_veth_pair_train_like_one_node_with_two_processes(
    two_namespaces: tuple[tuple[str, str], tuple[str, str]], tiny_model_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "two-nodes"
    procs = []
    for node_rank, (ns, veth) in enumerate(two_namespaces):
        env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": veth}
        command = ["ip", "netns", "exec", ns, sys.executable, "-m", "tunelab", "train", str(EXAMPLE), *FAST]
        command += [f"output_dir={out}", f"model_name_or_path={tiny_model_dir}", "--nproc-per-node", "1"]
        command += ["--nnodes", "2", "--node-rank", str(node_rank), "--master-addr", MASTER]
        command += ["--master-port", str(PORT)]
        log = (tmp_path / f"node{node_rank}.log").open("w")
        procs.append((subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env), log))
    try:
        codes = [proc.wait(timeout=400) for proc, _ in procs]
    finally:
        for proc, log in procs:
            if proc.poll() is None:
                proc.kill()
            log.close()
    text = "\n".join((tmp_path / f"node{r}.log").read_text() for r in (0, 1))
    assert codes == [0, 0], text[-4000:]
    assert "2 nodes" in " ".join(text.split())

    single = tmp_path / "one-node"
    ref = tunelab_train(single, nproc=2, model=tiny_model_dir)
    assert ref.returncode == 0, ref.stderr[-3000:]
    assert_same_curve(losses(single), losses(out))
