"""`tunelab lr-find`: the range test leaves the model as it was, stops on divergence, suggests, plots."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from tunelab.cli import app
from tunelab.config import load_config
from tunelab.errors import ConfigError
from tunelab.tune.lr_find import lr_range_test, smooth_losses, suggest_learning_rates

runner = CliRunner()


def test_suggestions_on_a_curve_with_a_known_good_range() -> None:
    # a loss that falls fastest around 1e-3, is lowest at 1e-2 and explodes after
    lrs = [10 ** (-6 + 6 * i / 99) for i in range(100)]
    losses = [
        2.0 - math.tanh(2 * (math.log10(lr) + 3)) + (50 * (lr - 1e-2) if lr > 1e-2 else 0) for lr in lrs
    ]
    suggestions = suggest_learning_rates(lrs, losses)
    assert 5e-4 < suggestions["steepest"] < 2e-3
    assert 5e-4 < suggestions["min_div_10"] < 2e-3
    assert smooth_losses([1.0, 1.0, 1.0]) == pytest.approx([1.0, 1.0, 1.0])  # bias-corrected EMA
    with pytest.raises(ConfigError):
        suggest_learning_rates(lrs[:2], losses[:2])


def test_range_test_restores_weights_and_stops_on_divergence() -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(64, 4), torch.randn(64, 1)

    def step(i: int) -> float:
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        return float(loss.detach())

    lrs, losses, smoothed, diverged = lr_range_test(
        model, optimizer, step, start_lr=1e-4, end_lr=100, num_steps=80
    )
    assert diverged and len(lrs) < 80  # SGD on least squares blows up past lr ~ 1
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert optimizer.param_groups[0]["lr"] == 0.1


def test_lr_find_on_a_tiny_model(tiny_model_dir: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(
        f"model_name_or_path: {tiny_model_dir}\ndataset: instruct_en\ndataset_dir: builtin\ntemplate: chatml\n"
        "finetuning_type: full\nper_device_train_batch_size: 8\n",
        encoding="utf-8",
    )
    out = tmp_path / "lr.yaml"
    result = runner.invoke(
        app,
        [
            "lr-find",
            str(cfg),
            "--steps",
            "20",
            "--start-lr",
            "1e-5",
            "--output-dir",
            str(tmp_path / "lrf"),
            "-o",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    shown = " ".join(result.output.split())  # the suggestion's source, and the recipe's rate beside it
    assert "suggestion (source: lr-find)" in shown and re.search(r"source: .*\(recipe \d", shown)
    assert json.loads((tmp_path / "lrf" / "lr_answer.json").read_text())["lr_find"] is not None
    data = json.loads((tmp_path / "lrf" / "lr_find.json").read_text())
    assert (tmp_path / "lrf" / "lr_find.png").stat().st_size > 10_000
    assert 1e-5 <= data["suggestion"] <= 1.0 and set(data["suggestions"]) == {
        "steepest",
        "minimum",
        "min_div_10",
    }
    assert len(data["lrs"]) == len(data["losses"]) == data["n_steps"] <= 20
    assert load_config(out).training.learning_rate == data["suggestion"]
    # the model files on disk were only read
    from safetensors.torch import load_file

    weights = load_file(str(tiny_model_dir / "model.safetensors"))
    assert all(torch.isfinite(t).all() for t in weights.values())


@pytest.mark.parametrize("method", ["lora", "freeze"])
def test_range_test_on_a_real_model_leaves_its_weights_untouched(tiny_model_dir: Path, method: str) -> None:
    from tunelab.tune.probe import TrainingProbe

    config = load_config(
        None,
        [f"model_name_or_path={tiny_model_dir}", "dataset=instruct_en", "dataset_dir=builtin", "template=chatml",
         f"finetuning_type={method}", "per_device_train_batch_size=4"],
    )  # fmt: skip
    probe = TrainingProbe(config)
    before = {name: p.detach().clone() for name, p in probe.model.named_parameters()}
    batches = probe.sample_batches(4, 8)

    def step(i: int) -> float:
        return probe.train_step(batches[i])

    lrs, losses, _, _ = lr_range_test(
        probe.model, probe.optimizer, step, start_lr=1e-5, end_lr=10.0, num_steps=8
    )
    assert len(losses) == len(lrs) >= 5 and lrs[0] == pytest.approx(1e-5)
    after = dict(probe.model.named_parameters())
    assert all(torch.equal(before[name], after[name].detach()) for name in before)
    assert probe.optimizer.param_groups[0]["lr"] == config.training.learning_rate


def test_suggestion_lands_where_a_sweep_found_the_best_learning_rate(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    """Full fine-tuning of the tiny model on instruct_en (batch 8, cosine, 2 epochs): a sweep of real runs
    (benchmarks/lr_find_quality.py, docs/benchmarks.md) gave eval loss 6.37 / 5.71 / 4.77 / 2.94 / 2.57 /
    3.32 / 3.30 at 1e-4 ... 1e-1 in half decades, best about 7.8e-3. The range test must land within 3x."""
    from tunelab.tune.lr_find import lr_find

    config = load_config(
        None,
        [f"model_name_or_path={tiny_model_dir}", "finetuning_type=full", "dataset=instruct_en",
         "dataset_dir=builtin", "template=chatml", "cutoff_len=256", "val_size=0.1",
         "per_device_train_batch_size=8", "compute_type=fp32", "seed=42"],
    )  # fmt: skip
    result = lr_find(config, num_steps=100, output_dir=tmp_path / "lrf")
    assert 7.8e-3 / 3 <= result.suggestion <= 7.8e-3 * 3, result.suggestions
    assert result.suggestions["steepest"] < result.suggestions["minimum"]


def test_advise_measure_on_a_classifier_ramps_the_classifier(tiny_bert_dir: Path, tmp_path: Path) -> None:
    """Stage cls: the range test trains the encoder with its new head on the labelled splits
    (it used to load the encoder as a masked LM and fail on the missing MLM head)."""
    from tunelab.tune.advise import advise
    from tunelab.tune.probe import TrainingProbe

    config = load_config(
        None,
        [f"model_name_or_path={tiny_bert_dir}", "stage=cls", "finetuning_type=lora", "dataset=sentiment_en",
         "dataset_dir=builtin", "cutoff_len=32", "per_device_train_batch_size=8", "compute_type=fp32"],
    )  # fmt: skip
    probe = TrainingProbe(config)
    assert type(probe.model.base_model.model).__name__.endswith("ForSequenceClassification")
    assert any("classifier" in name for name, p in probe.model.named_parameters() if p.requires_grad)
    batch = probe.sample_batches(8, 1)[0]
    assert batch["labels"].shape == (8,) and batch["labels"].max() <= 1
    assert math.isfinite(probe.train_step(batch))

    advice = advise(config, measure=True, measure_steps=20, lr_dir=tmp_path / "lrf")
    assert advice.lr is not None and advice.lr.lr_find is not None
    data = json.loads((tmp_path / "lrf" / "lr_find.json").read_text())
    assert all(math.isfinite(x) for x in data["losses"]) and len(data["losses"]) >= 5


def test_a_probe_draws_its_new_weights_from_the_training_seed(tiny_bert_dir: Path) -> None:
    """The classifier head and LoRA A are new random weights: the probe (lr-find, find-batch) draws them
    from ``seed`` like the Trainer, so a range test run twice on one config measures the same model
    (the MiniLM range test gave 5.2e-4, 6.1e-4 and 6.6e-4 on three runs before)."""
    from tunelab.tune.probe import TrainingProbe

    items = [f"model_name_or_path={tiny_bert_dir}", "stage=cls", "finetuning_type=lora", "dataset=sentiment_en",
             "dataset_dir=builtin", "cutoff_len=32", "compute_type=fp32"]  # fmt: skip

    def new_weights(seed: int) -> list[torch.Tensor]:
        model = TrainingProbe(load_config(None, [*items, f"seed={seed}"]), with_optimizer=False).model
        return [p.detach().clone() for p in model.parameters() if p.requires_grad]

    first, again, other = new_weights(1), new_weights(1), new_weights(2)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not all(torch.equal(a, b) for a, b in zip(first, other))
