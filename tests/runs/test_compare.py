"""`tunelab runs list / compare / plot` on real run directories of tiny trainings."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tunelab.cli import app
from tunelab.config import config_from_dict
from tunelab.errors import ConfigError
from tunelab.runs.compare import compare_runs, config_differences
from tunelab.runs.listing import find_runs, list_runs
from tunelab.runs.summary import summarize_run
from tunelab.train import train
from tunelab.tune.trials import run_trial

runner = CliRunner()


def _config(model_dir: Path, out: Path, **over):
    values = {
        "model_name_or_path": str(model_dir),
        "stage": "sft",
        "finetuning_type": "lora",
        "dataset": "instruct_en",
        "dataset_dir": "builtin",
        "template": "chatml",
        "cutoff_len": 64,
        "max_samples": 48,
        "val_size": 8,
        "per_device_train_batch_size": 4,
        "max_steps": 3,
        "logging_steps": 1,
        "eval_strategy": "steps",
        "eval_steps": 3,
        "save_steps": 1000,
        "compute_type": "fp32",
        "disable_tqdm": True,
        "plot_loss": False,
        "output_dir": str(out),
        **over,
    }
    return config_from_dict(values)


@pytest.fixture(scope="module")
def runs_root(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """runs/a and runs/b (different LR and rank), and a study with one failed trial."""
    root = tmp_path_factory.mktemp("runs")
    train(_config(tiny_model_dir, root / "a", learning_rate=1e-3, lora_rank=4))
    train(_config(tiny_model_dir, root / "b", learning_rate=1e-2, lora_rank=8))
    base = _config(tiny_model_dir, root / "unused")
    run_trial(base, {"lora_dropout": 1.5}, root / "study" / "trial-000-drop1.5", 0, "eval_loss")
    return root


def test_compare_shows_metrics_config_differences_and_overlay(runs_root: Path) -> None:
    comparison = compare_runs([runs_root / "a", runs_root / "b"])
    assert comparison.differences["learning_rate"] == [1e-3, 1e-2]
    assert comparison.differences["lora_rank"] == [4, 8]
    assert "output_dir" not in comparison.differences and "cutoff_len" not in comparison.differences
    assert all(isinstance(v, float) for v in comparison.metrics["eval_loss"])
    assert comparison.metrics["status"] == ["finished", "finished"]
    assert comparison.plot == runs_root.resolve() / "compare_loss.png" and comparison.plot.stat().st_size > 0


def test_config_differences_include_keys_only_one_run_has(runs_root: Path) -> None:
    a, b = summarize_run(runs_root / "a"), summarize_run(runs_root / "b")
    b.config["health.enabled"] = False
    a.config.pop("health.enabled")
    assert config_differences([a, b])["health.enabled"] == [None, False]


def test_list_finds_runs_and_study_trials(runs_root: Path) -> None:
    assert {p.name for p in find_runs(runs_root)} == {"a", "b", "trial-000-drop1.5"}
    runs = {r.name: r for r in list_runs(runs_root)}
    assert runs["a"].status == runs["b"].status == "finished"
    assert (runs["a"].steps, runs["a"].total_steps) == (3, 3)
    assert runs["a"].train_loss is not None and runs["a"].eval_loss is not None
    assert runs["a"].model == runs["b"].model and runs["a"].method == "lora"
    failed = runs["study/trial-000-drop1.5"]
    assert failed.status == "failed" and "lora_dropout" in failed.reason


def test_compare_refuses_what_it_cannot_compare(runs_root: Path) -> None:
    with pytest.raises(ConfigError, match="at least two"):
        compare_runs([runs_root / "a"])
    with pytest.raises(ConfigError, match="not a run directory"):
        compare_runs([runs_root / "a", runs_root / "nothing"])


def test_runs_cli(runs_root: Path, tmp_path: Path) -> None:
    listed = runner.invoke(app, ["runs", "list", str(runs_root)], env={"COLUMNS": "200"})
    assert listed.exit_code == 0, listed.output
    assert "finished" in listed.stdout and "failed" in listed.stdout and "3/3" in listed.stdout

    plot = tmp_path / "cmp.png"
    compared = runner.invoke(
        app,
        ["runs", "compare", str(runs_root / "a"), str(runs_root / "b"), "--plot", str(plot)],
        env={"COLUMNS": "200"},
    )
    assert compared.exit_code == 0, compared.output
    assert "config differences" in compared.stdout and "lora_rank" in compared.stdout
    assert plot.stat().st_size > 0

    (runs_root / "a" / "plots" / "loss.png").unlink(missing_ok=True)
    plotted = runner.invoke(app, ["runs", "plot", str(runs_root / "a")])
    assert plotted.exit_code == 0 and (runs_root / "a" / "plots" / "loss.png").is_file()

    missing = runner.invoke(app, ["runs", "compare", str(runs_root / "a")])
    assert missing.exit_code == 2 and "at least two" in missing.output


def test_a_trial_can_be_named_by_its_number(runs_root: Path) -> None:
    from tunelab.runs.compare import resolve_run_dir

    assert resolve_run_dir(runs_root / "study" / "trial-000") == runs_root / "study" / "trial-000-drop1.5"
    assert resolve_run_dir(runs_root / "a") == runs_root / "a"
    assert (
        resolve_run_dir(runs_root / "study" / "trial-9") == runs_root / "study" / "trial-9"
    )  # no match: as given
