"""advise --measure: the range test runs on the advised config and joins the recipe in one answer."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from tunelab.cli import app
from tunelab.config import load_config
from tunelab.tune.advise_lr import recipe_learning_rate

runner = CliRunner()


def test_advise_measure_combines_the_range_test_with_the_recipe(tiny_model_dir: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {"model_name_or_path": str(tiny_model_dir), "dataset": "instruct_en", "dataset_dir": "builtin",
             "template": "chatml", "cutoff_len": 64, "output_dir": str(tmp_path / "runs" / "run")}
        ),
        encoding="utf-8",
    )  # fmt: skip
    out, lr_dir = tmp_path / "advised.yaml", tmp_path / "lr"
    args = ["advise", str(cfg), "--measure", "--measure-steps", "40", "--lr-dir", str(lr_dir), "-o", str(out)]
    result = runner.invoke(app, args, env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    answer = json.loads((lr_dir / "lr_answer.json").read_text(encoding="utf-8"))
    assert answer["study"] is None and answer["lr_find"] is not None
    found = json.loads((lr_dir / "lr_find.json").read_text(encoding="utf-8"))
    assert answer["lr_find"]["value"] == found["suggestion"] and (lr_dir / "lr_find.png").is_file()
    # the range test ran at the advised effective batch, the one the recipe prior was scaled to
    t = load_config(out).training
    effective = t.per_device_train_batch_size * t.gradient_accumulation_steps
    assert found["micro_batch"] * found["gradient_accumulation_steps"] == effective
    assert t.learning_rate == answer["value"]
    if not answer["lr_find"]["informative"]:  # a curve without a descent is shown, never used
        assert (answer["source"], answer["value"]) == ("recipe", answer["recipe"]["value"])
    else:  # a tiny model is far below the recipe's 1B-70B runs: the measurement is the answer
        assert answer["recipe"]["extrapolated"]
        assert (answer["source"], answer["value"]) == ("lr-find", answer["lr_find"]["value"])
    shown = " ".join(result.stdout.split())
    assert "learning rate: " in shown and f"lr-find {answer['lr_find']['value']:.2g}" in shown
    assert f"recipe {answer['recipe']['value']:.2g}" in shown


def test_recipe_reason_states_how_its_band_is_derived() -> None:
    prior, en, zh = recipe_learning_rate("instruction", "lora", 4e6, 8, "adamw_torch")
    assert prior.source == "recipe" and prior.low < prior.value < prior.high
    assert "QLoRA" in en and "sqrt-vs-linear batch rule" in en and "size extrapolation" in en
    assert "平方根与线性规则" in zh


def test_full_fine_tuning_moves_pretrained_weights_unless_the_model_is_random() -> None:
    full = recipe_learning_rate("classification", "full", 2.2e7, 8, "adamw_torch")[0]
    scratch = recipe_learning_rate("classification", "full", 2.2e7, 8, "adamw_torch", from_scratch=True)[0]
    lora = recipe_learning_rate("classification", "lora", 2.2e7, 8, "adamw_torch")[0]
    assert full.moves_pretrained and not scratch.moves_pretrained and not lora.moves_pretrained
    assert full.value == scratch.value  # the recipe is the same; how a range test joins it differs
