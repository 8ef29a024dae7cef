"""tunelab.distributed in one process: every question has the single-process answer, no torch group."""

from __future__ import annotations

from tunelab import distributed


def test_without_a_launcher_this_process_is_rank_0_of_1(monkeypatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert (distributed.rank(), distributed.world_size(), distributed.local_rank()) == (0, 1, 0)
    assert distributed.is_writer() and not distributed.is_distributed() and not distributed.is_launched()
    distributed.init_process_group(60)  # nothing to join
    assert distributed.all_reduce_mean(2.5) == 2.5
    assert distributed.all_reduce_sum([1, 2.5]) == [1.0, 2.5]
    assert distributed.all_gather_objects({0: (1.0, 2)}) == [{0: (1.0, 2)}]
    assert distributed.any_rank(True) and not distributed.all_agree(False)
    assert distributed.broadcast_decision({"stop": 3}) == {"stop": 3}
    assert distributed.prepare_once(lambda a, b: a + b, 1, b=2) == 3
    with distributed.main_process_first():
        pass
    distributed.barrier()


def test_the_launcher_variables_say_who_writes(monkeypatch) -> None:
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert distributed.is_launched() and distributed.is_distributed()
    assert not distributed.is_writer() and distributed.local_rank() == 1

    from tunelab.runs.rundir import RunDir

    assert RunDir("x").writer is False and RunDir("x", writer=True).writer
