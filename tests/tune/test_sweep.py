"""`tunelab sweep`: grid / around / random plans, and real trials as run directories in a study."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tunelab.cli import app
from tunelab.config import config_from_dict, load_config
from tunelab.errors import ConfigError
from tunelab.runs import RunDir
from tunelab.tune.sweep import parse_grid, plan_sweep, split_sweep_items, sweep

runner = CliRunner()


def tiny_values(model_dir: Path, **over) -> dict:
    """A few-step LoRA run with evaluations: a trial takes seconds."""
    values = {
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
        "learning_rate": 5e-3,
        "max_steps": 4,
        "logging_steps": 2,
        "eval_strategy": "steps",
        "eval_steps": 2,
        "save_steps": 1000,
        "compute_type": "fp32",
        "disable_tqdm": True,
        "plot_loss": False,
    }
    values.update(over)
    return values


def cfg(**values):
    return config_from_dict({"model_name_or_path": "tiny:llama", **values})


def test_grid_expands_to_the_product_in_order() -> None:
    grid = parse_grid(["learning_rate=3e-5,1e-4,3e-4", "lora_rank=8,16"])
    assert grid == {"learning_rate": [3e-5, 1e-4, 3e-4], "lora_rank": [8, 16]}
    plans = plan_sweep(cfg(), grid=grid)
    assert len(plans) == 6
    assert plans[0] == {"learning_rate": 3e-5, "lora_rank": 8}
    assert plans[-1] == {"learning_rate": 3e-4, "lora_rank": 16}


def test_positional_comma_items_of_numeric_keys_are_grid_axes() -> None:
    overrides, axes = split_sweep_items(
        [
            "lora_rank=8,16",
            "lr_scheduler_type=cosine,linear",
            "lora_target=q_proj,v_proj",
            "dataset=a,b",
            "seed=3",
        ]
    )
    assert axes == ["lora_rank=8,16", "lr_scheduler_type=cosine,linear"]
    assert overrides == ["lora_target=q_proj,v_proj", "dataset=a,b", "seed=3"]


def test_around_is_a_third_and_three_times_the_current_value() -> None:
    plans = plan_sweep(cfg(learning_rate=1e-4, lora_rank=8), around=["learning_rate", "lora_rank"])
    assert sorted({p["learning_rate"] for p in plans}) == [3e-5, 1e-4, 3e-4]
    assert sorted({p["lora_rank"] for p in plans}) == [2, 8, 24]
    assert len(plans) == 9
    with pytest.raises(ConfigError, match="not a number to scale"):
        plan_sweep(cfg(), around=["lr_scheduler_type"])
    with pytest.raises(ConfigError, match="is 0"):
        plan_sweep(cfg(weight_decay=0.0), around=["weight_decay"])
    with pytest.raises(ConfigError, match="did you mean 'learning_rate'"):
        plan_sweep(cfg(), around=["learning_rat"])


def test_random_draws_come_from_the_tune_space() -> None:
    config = cfg(
        tune={"space": {"learning_rate": {"low": 1e-5, "high": 1e-3, "log": True}, "lora_rank": [4, 8]}}
    )
    plans = plan_sweep(config, n_random=5)
    assert len(plans) == 5 and plans == plan_sweep(config, n_random=5)  # seeded by the config's seed
    assert all(1e-5 <= p["learning_rate"] <= 1e-3 and p["lora_rank"] in (4, 8) for p in plans)
    with pytest.raises(ConfigError, match="cannot be combined"):
        plan_sweep(config, grid={"lora_rank": [4]}, n_random=2)
    with pytest.raises(ConfigError, match="nothing to sweep"):
        plan_sweep(config)


def test_grid_values_must_fit_the_key() -> None:
    with pytest.raises(ConfigError, match="not a number"):
        parse_grid(["learning_rate=fast,slow"])


def test_sweep_cli_runs_each_trial_as_a_run_directory(tiny_model_dir: Path, tmp_path: Path) -> None:
    config_path = tmp_path / "sweep.yaml"
    config_path.write_text(yaml.safe_dump(tiny_values(tiny_model_dir)))
    study = tmp_path / "study"
    args = ["sweep", str(config_path), "--grid", "learning_rate=1e-2", "lora_rank=4,8", "-o", str(study)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    trials = sorted(p for p in study.iterdir() if p.name.startswith("trial-"))
    assert [p.name for p in trials] == ["trial-000-lr0.01-r4", "trial-001-lr0.01-r8"]
    for path, rank in zip(trials, (4, 8)):
        trained = load_config(path / "config.yaml")  # every trial is an ordinary, reproducible run
        assert (trained.finetuning.lora_rank, trained.training.learning_rate) == (rank, 1e-2)
        run = RunDir(path)
        assert run.is_finished() and run.read_metrics()["status"] == "finished"
        assert any("eval_loss" in row for row in run.read_log())
        assert json.loads((path / "trial.json").read_text())["status"] == "complete"
    summary = json.loads((study / "summary.json").read_text())
    assert summary["n_trials"] == 2 and summary["counts"] == {"complete": 2}
    values = [t["value"] for t in summary["trials"]]
    assert values == sorted(values) and summary["best"]["value"] == values[0]  # ranked, lower is better
    with (study / "trials.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["rank"] for r in rows] == ["1", "2"] and {r["lora_rank"] for r in rows} == {"4", "8"}
    assert (study / "plots" / "objective_vs_params.png").stat().st_size > 0
    assert (study / "plots" / "loss_curves.png").stat().st_size > 0
    assert "ranked by eval_loss" in result.stdout

    again = runner.invoke(app, args)  # the same sweep again: nothing new to run
    assert again.exit_code == 0, again.output
    assert "2 of 2 trials already ran" in again.output
    assert len([p for p in study.iterdir() if p.name.startswith("trial-")]) == 2


def test_a_rejected_combination_is_a_failed_trial(tiny_model_dir: Path, tmp_path: Path) -> None:
    config = config_from_dict(tiny_values(tiny_model_dir))
    result = sweep(config, tmp_path / "study", [{"lora_dropout": 1.5}])
    (trial,) = result.trials
    assert trial.status == "failed" and "lora_dropout" in (trial.reason or "")
    assert result.summary["counts"] == {"failed": 1} and result.summary["best"] is None


@pytest.mark.slow
@pytest.mark.ci
def test_parallel_workers_run_the_trials(tiny_model_dir: Path, tmp_path: Path) -> None:
    config = config_from_dict(tiny_values(tiny_model_dir))
    plans = plan_sweep(config, grid={"learning_rate": [1e-3, 1e-2]})
    result = sweep(config, tmp_path / "study", plans, n_workers=2)
    assert sorted(t.number for t in result.trials) == [0, 1]
    assert all(t.status == "complete" and RunDir(t.run_dir).is_finished() for t in result.trials)
