"""A study of the config answers the learning rate: found beside its runs, labelled "study", and only
when it ran this config."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from tunelab.cli import app
from tunelab.config import load_config
from tunelab.tune.lr_study import find_study, study_estimate
from tunelab.tune.summary import write_study_files
from tunelab.tune.sweep import config_fingerprint
from tunelab.tune.trials import TrialOutcome

runner = CliRunner()


def _config(tmp_path: Path, model: Path) -> Path:
    values = {
        "model_name_or_path": str(model),
        "dataset": "instruct_en",
        "dataset_dir": "builtin",
        "template": "chatml",
        "output_dir": str(tmp_path / "runs" / "run"),
    }
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    return path


def _study(folder: Path, base: str, lrs_and_losses: list[tuple[float, float]]) -> Path:
    """A study folder as `tunelab sweep` leaves it (its own summary writer), without training."""
    trials = [
        TrialOutcome(i, {"learning_rate": lr}, folder / f"trial-{i:03d}", "complete", value=loss)
        for i, (lr, loss) in enumerate(lrs_and_losses)
    ]
    trials.append(TrialOutcome(9, {"learning_rate": 3e-1}, folder / "trial-009", "failed", reason="diverged"))
    write_study_files(
        folder, trials, metric="eval_loss", lower_is_better=True, extra={"kind": "sweep", "base_config": base}
    )
    return folder


def _flat(text: str) -> str:
    return " ".join(text.split())  # rich wraps long lines


def test_the_study_of_this_config_overrides_and_is_labelled_study(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    cfg = _config(tmp_path, tiny_model_dir)
    mine = config_fingerprint(load_config(cfg))
    study = _study(tmp_path / "runs" / "sweep-web", mine, [(1e-3, 2.0), (4e-3, 1.5), (1e-2, 1.8)])
    _study(tmp_path / "runs" / "sweep-other", "another-config", [(5e-2, 0.1)])  # better, but not this config

    assert find_study(load_config(cfg), config_path=cfg) == study.resolve()
    estimate = study_estimate(study)
    assert (estimate.value, estimate.low, estimate.high) == (4e-3, 1e-3, 1e-2)  # bracketed by its neighbours

    out = tmp_path / "advised.yaml"
    result = runner.invoke(
        app, ["advise", str(cfg), "-o", str(out), "--lr-dir", str(tmp_path / "lr")], env={"COLUMNS": "250"}
    )
    assert result.exit_code == 0, result.output
    assert "source: study" in _flat(result.stdout) and "recipe 0.0" in _flat(result.stdout)
    assert load_config(out).training.learning_rate == 4e-3
    line = next(
        row for row in out.read_text(encoding="utf-8").splitlines() if row.startswith("learning_rate:")
    )
    assert "source: study" in line and "sweep-web" in line and "lr-find not run" in line
    answer = json.loads((tmp_path / "lr" / "lr_answer.json").read_text(encoding="utf-8"))
    assert answer["source"] == "study" and answer["recipe"]["value"] != 4e-3

    zh = runner.invoke(app, ["advise", str(cfg), "--lang", "zh"], env={"COLUMNS": "250"})
    assert zh.exit_code == 0 and "来源：超参搜索" in "".join(zh.stdout.split())


def test_a_study_of_another_config_or_without_learning_rate_is_ignored(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    cfg = _config(tmp_path, tiny_model_dir)
    _study(tmp_path / "runs" / "sweep-other", "another-config", [(5e-2, 0.1)])
    assert find_study(load_config(cfg), config_path=cfg) is None
    rank_only = tmp_path / "rank-study"
    write_study_files(
        rank_only,
        [TrialOutcome(0, {"lora_rank": 4}, rank_only / "t0", "complete", value=1.0)],
        metric="eval_loss",
        lower_is_better=True,
    )
    assert study_estimate(rank_only) is None  # it did not search the learning rate
    result = runner.invoke(app, ["advise", str(cfg), "--study", str(rank_only)], env={"COLUMNS": "250"})
    assert result.exit_code == 0 and "source: recipe" in _flat(result.stdout)

    missing = runner.invoke(app, ["advise", str(cfg), "--study", str(tmp_path / "nothing")])
    assert missing.exit_code == 2 and "summary.json" in missing.output
