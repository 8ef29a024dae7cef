"""`tunelab tune`: a real Optuna study on a tiny model with SQLite storage, pruning, failures,
resuming, best.yaml, and workers sharing one study."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path

import optuna
import pytest
import yaml
from typer.testing import CliRunner

from tunelab.cli import app
from tunelab.config import config_from_dict, load_config
from tunelab.errors import ConfigError, ResourceError
from tunelab.runs import RunDir
from tunelab.train import train
from tunelab.tune.search import build_pruner, build_sampler
from tunelab.tune.space import resolve_space
from tunelab.tune.storage import storage_url
from tunelab.tune.study import tune

runner = CliRunner()

BASE_LR = 5e-3


def study_values(model_dir: Path, **tune_over) -> dict:
    """A 4-step LoRA run evaluated every 2 steps; LR searched on a log scale."""
    return {
        "model_name_or_path": str(model_dir),
        "stage": "sft",
        "finetuning_type": "lora",
        "dataset": "instruct_en",
        "dataset_dir": "builtin",
        "template": "chatml",
        "cutoff_len": 64,
        "max_samples": 64,
        "val_size": 16,
        "per_device_train_batch_size": 4,
        "learning_rate": BASE_LR,
        "max_steps": 4,
        "logging_steps": 1,
        "eval_strategy": "steps",
        "eval_steps": 2,
        "save_steps": 1000,
        "compute_type": "fp32",
        "disable_tqdm": True,
        "plot_loss": False,
        "tune": {"space": {"learning_rate": {"low": 1e-7, "high": 50.0, "log": True}}, **tune_over},
    }


def test_tiny_study_prunes_fails_resumes_and_writes_best(tiny_model_dir: Path, tmp_path: Path) -> None:
    # trial 0: the config's own LR (baseline); 1: far too low -> behind trial 0 at the first
    # evaluation -> pruned; 2: absurdly high -> the health monitor stops it -> failed with its reason
    values = study_values(
        tiny_model_dir, enqueue=[{"learning_rate": 1e-7}, {"learning_rate": 30.0}], prune_startup_trials=1
    )
    config_path = tmp_path / "tune.yaml"
    config_path.write_text(yaml.safe_dump(values))
    study_dir = tmp_path / "study"
    result = tune(load_config(config_path), study_dir, n_trials=3)

    statuses = [(t.number, t.status) for t in result.trials]
    assert statuses == [(0, "complete"), (1, "pruned"), (2, "failed")]
    base, low, high = result.trials
    assert base.params == {"learning_rate": BASE_LR} and base.steps == 4
    assert low.steps == 2 < low.total_steps == 4 and "pruned at step 2" in low.reason
    pruned_run = RunDir(low.run_dir)
    assert pruned_run.read_metrics()["status"] == "pruned"  # a complete run directory, marked pruned
    assert any(e["kind"] == "pruned" for e in pruned_run.read_events())
    assert "health monitor" in high.reason and "learning rate" in high.reason
    assert result.best is not None and result.best.number == 0
    assert result.summary["pruning"]["n_pruned"] == 1 and result.summary["pruning"]["share_saved"] > 0
    db = study_dir / "study.db"
    assert db.is_file() and result.storage == f"sqlite:///{db}"
    for name in (
        "summary.json",
        "trials.csv",
        "plots/optimization_history.png",
        "plots/intermediate_values.png",
    ):
        assert (study_dir / name).stat().st_size > 0, name

    # resume through the CLI: the same study in the same SQLite file gets one more trial
    cli = runner.invoke(app, ["tune", str(config_path), "--n-trials", "4", "--study-dir", str(study_dir)])
    assert cli.exit_code == 0, cli.output
    assert "3 of 4 trials done" in " ".join(cli.output.split())  # rich wraps lines
    study = optuna.load_study(study_name="study", storage=f"sqlite:///{db}")
    assert [t.number for t in study.trials] == [0, 1, 2, 3]
    assert [t.params["learning_rate"] for t in study.trials[:3]] == [BASE_LR, 1e-7, 30.0]
    summary = json.loads((study_dir / "summary.json").read_text())
    assert summary["n_trials"] == 4 and "ranked by eval_loss" in cli.stdout
    assert summary["base_config"] and "source: study" in " ".join(cli.stdout.split())  # advise finds it

    # best.yaml is a config ready to train
    best = load_config(study_dir / "best.yaml", ["max_steps=2"])
    assert best.training.learning_rate == summary["best"]["params"]["learning_rate"]
    assert Path(best.output.output_dir) == study_dir / "best"
    assert train(best).status == "finished"


def test_a_rejected_combination_fails_the_trial_not_the_study(tiny_model_dir: Path, tmp_path: Path) -> None:
    values = study_values(tiny_model_dir, baseline_first=False)
    values["tune"]["space"] = {"lora_dropout": [1.5]}  # out of range: the schema rejects it
    result = tune(config_from_dict(values), tmp_path / "study", n_trials=2)
    assert [t.status for t in result.trials] == ["failed", "failed"]
    assert all("lora_dropout" in t.reason for t in result.trials)
    assert result.best is None and result.best_config is None
    assert json.loads((result.trials[0].run_dir / "trial.json").read_text())["status"] == "failed"


def test_the_metric_must_be_measured(tiny_model_dir: Path, tmp_path: Path) -> None:
    values = study_values(tiny_model_dir)
    values.update(eval_strategy="no", val_size=0)
    with pytest.raises(ConfigError, match="needs evaluations"):
        tune(config_from_dict(values), tmp_path / "study")


def test_a_changed_base_config_is_a_new_study(tiny_model_dir: Path, tmp_path: Path) -> None:
    values = study_values(tiny_model_dir, baseline_first=False)
    values["tune"]["space"] = {"lora_dropout": [1.5]}  # fails at once: no training needed
    tune(config_from_dict(values), tmp_path / "study", n_trials=1)
    values["cutoff_len"] = 32
    with pytest.raises(ConfigError, match="different config"):
        tune(config_from_dict(values), tmp_path / "study", n_trials=2)


def test_samplers_and_pruners_by_name() -> None:
    config = config_from_dict({"model_name_or_path": "tiny:llama", "max_steps": 5})
    space = resolve_space(config)
    kinds = {}
    for name in ("tpe", "random", "grid", "cmaes"):
        kinds[name] = type(
            build_sampler(config.tune.model_copy(update={"sampler": name}), space, 0, 20)
        ).__name__
    assert kinds == {
        "tpe": "TPESampler",
        "random": "RandomSampler",
        "grid": "GridSampler",
        "cmaes": "CmaEsSampler",
    }
    pruners = {
        name: type(build_pruner(config.tune.model_copy(update={"pruner": name}))).__name__
        for name in ("median", "successive_halving", "hyperband", "none")
    }
    assert pruners == {
        "median": "MedianPruner",
        "successive_halving": "SuccessiveHalvingPruner",
        "hyperband": "HyperbandPruner",
        "none": "NopPruner",
    }


def test_storage_urls(tmp_path: Path) -> None:
    assert storage_url(None, tmp_path) == f"sqlite:///{tmp_path.resolve()}/study.db"
    with pytest.raises(ConfigError, match="not a database URL"):
        storage_url("study.db", tmp_path)
    try:
        url = storage_url("postgresql://u:p@localhost/db", tmp_path)
    except ResourceError:  # no PostgreSQL driver installed: the error says which package to add
        return
    assert url.startswith(("postgresql://", "postgresql+psycopg://")) and url.endswith("u:p@localhost/db")


def test_tune_show_space_prints_yaml(tmp_path: Path) -> None:
    result = runner.invoke(app, ["tune", "model_name_or_path=tiny:llama", "max_steps=5", "--show-space"])
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.stdout)["tune"]["space"]["lora_rank"] == [4, 8, 16, 32]


@pytest.mark.slow
@pytest.mark.ci
def test_two_workers_share_one_sqlite_study(tiny_model_dir: Path, tmp_path: Path) -> None:
    values = study_values(tiny_model_dir, n_workers=2, pruner="none")
    values["tune"]["space"] = {"learning_rate": {"low": 1e-3, "high": 2e-2, "log": True}}
    result = tune(config_from_dict(values), tmp_path / "study", n_trials=4)
    assert sorted(t.number for t in result.trials) == [0, 1, 2, 3]
    assert all(t.status == "complete" for t in result.trials), [(t.status, t.reason) for t in result.trials]
    assert (
        len({t.params["learning_rate"] for t in result.trials}) == 4
    )  # the workers did not repeat each other
    assert all(RunDir(t.run_dir).is_finished() for t in result.trials)
    with sqlite3.connect(tmp_path / "study" / "study.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    _assert_no_extra_trial_trained(f"sqlite:///{tmp_path / 'study' / 'study.db'}", tmp_path / "study")


def _assert_no_extra_trial_trained(url: str, study_dir: Path) -> None:
    """A trial beyond n_trials (both workers started the last one) is marked surplus, never trained."""
    stored = optuna.load_study(study_name="study", storage=url).trials
    extra = [t for t in stored if t.number >= 4]
    assert all(t.user_attrs.get("surplus") and t.state.name == "FAIL" for t in extra), extra
    assert sorted(p.name[:9] for p in study_dir.glob("trial-*")) == [f"trial-{i:03d}" for i in range(4)]
    assert json.loads((study_dir / "summary.json").read_text())["n_surplus"] == len(extra)


def _start_postgres() -> tuple[str, Path]:
    """A throwaway PostgreSQL server on a local port (Debian's package), run as the postgres user.

    Its data folder lives outside pytest's tmp_path, whose parents only root may enter.
    """
    if not shutil.which("initdb") or not shutil.which("runuser"):
        pytest.skip("PostgreSQL server binaries are not installed (apt-get install postgresql)")
    pytest.importorskip("psycopg")
    data = Path(tempfile.mkdtemp(prefix="tunelab-pg-"))
    shutil.chown(data, "postgres")
    as_pg = ["runuser", "-u", "postgres", "--"]
    run = {"check": True, "capture_output": True, "cwd": data}
    subprocess.run([*as_pg, "initdb", "-D", str(data / "db"), "-A", "trust", "-U", "postgres"], **run)
    port = 54000 + os.getpid() % 1000
    options = f"-p {port} -k {data} -h 127.0.0.1"
    subprocess.run(
        [*as_pg, "pg_ctl", "-D", str(data / "db"), "-o", options, "-w", "-l", str(data / "log"), "start"],
        **run,
    )
    subprocess.run([*as_pg, "createdb", "-h", "127.0.0.1", "-p", str(port), "optuna"], **run)
    return f"postgresql://postgres@127.0.0.1:{port}/optuna", data


@pytest.mark.slow
@pytest.mark.ci
def test_two_workers_share_a_postgresql_study(tiny_model_dir: Path, tmp_path: Path) -> None:
    url, data = _start_postgres()
    try:
        values = study_values(tiny_model_dir, n_workers=2, pruner="none")
        values["tune"]["space"] = {"learning_rate": {"low": 1e-3, "high": 2e-2, "log": True}}
        result = tune(config_from_dict(values), tmp_path / "study", n_trials=4, storage=url)
        assert sorted(t.number for t in result.trials) == [0, 1, 2, 3]
        assert all(t.status == "complete" for t in result.trials)
        assert not (tmp_path / "study" / "study.db").exists()
        assert result.storage.startswith("postgresql")
        _assert_no_extra_trial_trained(storage_url(url, tmp_path), tmp_path / "study")
    finally:
        stop = ["runuser", "-u", "postgres", "--", "pg_ctl", "-D", str(data / "db"), "-m", "fast", "stop"]
        subprocess.run(stop, check=False, capture_output=True, cwd=data)
        shutil.rmtree(data, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.ci
def test_ctrl_c_stops_the_study_and_running_again_continues(tiny_model_dir: Path, tmp_path: Path) -> None:
    import signal
    import sys

    values = study_values(tiny_model_dir, pruner="none")
    values.update(max_steps=40, eval_steps=20)
    values["tune"]["space"] = {"learning_rate": {"low": 1e-3, "high": 1e-2, "log": True}}
    config_path = tmp_path / "tune.yaml"
    config_path.write_text(yaml.safe_dump(values))
    study_dir = tmp_path / "study"
    command = [
        sys.executable,
        "-m",
        "tunelab",
        "tune",
        str(config_path),
        "--n-trials",
        "1",
        "-o",
        str(study_dir),
    ]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not list(study_dir.glob("trial-000*/trainer_log.jsonl")) and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert "run the same command again" in " ".join(err.split())
    (first,) = optuna.load_study(study_name="study", storage=f"sqlite:///{study_dir / 'study.db'}").trials
    assert first.user_attrs.get("interrupted") is True

    result = tune(load_config(config_path), study_dir, n_trials=1)  # the interrupted trial does not count
    assert [t.status for t in result.trials] == ["interrupted", "complete"]
    assert result.best is not None and result.best.number == 1
