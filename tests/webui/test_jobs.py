"""Jobs are real `tunelab` subprocesses; their records survive a UI restart."""

from __future__ import annotations

from pathlib import Path

from tunelab.webui.jobs import JobManager, status_of_exit


def test_a_finished_job_records_status_and_output(tmp_path: Path) -> None:
    jobs = JobManager(tmp_path / "state", cwd=tmp_path)
    job = jobs.wait(jobs.start("version", ["version"]).id, timeout=60)
    assert job.status == "finished" and job.returncode == 0
    from tunelab import __version__

    assert __version__ in jobs.log_tail(job)
    assert job.command_line == "tunelab version"


def test_a_failing_job_shows_the_cli_error(tmp_path: Path) -> None:
    jobs = JobManager(tmp_path / "state", cwd=tmp_path)
    job = jobs.wait(
        jobs.start("train", ["train", "lora_rnak=8", "model_name_or_path=tiny:llama"]).id, timeout=60
    )
    assert job.status == "failed" and job.returncode == 2
    assert "did you mean 'lora_rank'" in jobs.log_tail(job)


def test_records_persist_for_a_restarted_ui(tmp_path: Path) -> None:
    first = JobManager(tmp_path / "state", cwd=tmp_path)
    job = first.wait(first.start("version", ["version"], run_dir=tmp_path / "r").id, timeout=60)
    second = JobManager(tmp_path / "state", cwd=tmp_path)  # a new UI process reads jobs.json
    again = second.get(job.id)
    assert again is not None and again.status == "finished" and again.run_dir == str(tmp_path / "r")
    assert second.latest("version") is not None and second.latest("version", running=True) is None


def test_exit_codes_map_to_statuses() -> None:
    assert status_of_exit(0) == "finished"
    assert status_of_exit(3) == "stopped"  # health monitor
    assert status_of_exit(130) == "aborted"
    assert status_of_exit(130, abort_requested=True) == "aborted"
    assert status_of_exit(1) == "failed"


def test_an_answer_on_stdout_goes_to_its_own_file(tmp_path: Path) -> None:
    jobs = JobManager(tmp_path / "state", cwd=tmp_path)
    answer = tmp_path / "answer.txt"
    job = jobs.wait(jobs.start("version", ["version"], stdout_path=answer).id, timeout=60)
    assert job.status == "finished"
    from tunelab import __version__

    assert answer.read_text().strip() == __version__ and __version__ not in jobs.log_tail(job)


def test_exit_code_3_is_an_answer_for_estimate_and_a_stop_for_train() -> None:
    assert status_of_exit(3, kind="estimate") == "finished"  # "does not fit" is a result
    assert status_of_exit(3, kind="train") == "stopped"
    assert status_of_exit(3, kind="study") == "failed"
