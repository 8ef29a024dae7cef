"""`tunelab eval` end to end on tiny models: loss, predictions file, benchmark, before-vs-after, run dirs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tunelab.cli import app
from tunelab.config import config_from_dict
from tunelab.errors import ConfigError

runner = CliRunner()


@pytest.fixture(scope="module")
def random_adapter(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real LoRA adapter with random (non-zero) B matrices: it changes the model's outputs."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    peft = get_peft_model(
        model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    )
    out = tmp_path_factory.mktemp("adapter")
    peft.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def tiny_run(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished two-step LoRA run of the tiny model (the real run-directory layout)."""
    from tunelab.train import train

    out = tmp_path_factory.mktemp("runs") / "sft-tiny"
    config = config_from_dict(
        {
            "model_name_or_path": str(tiny_model_dir),
            "dataset": "identity_en",
            "dataset_dir": "builtin",
            "template": "chatml",
            "max_samples": 24,
            "val_size": 4,
            "cutoff_len": 96,
            "per_device_train_batch_size": 8,
            "max_steps": 2,
            "learning_rate": 5e-3,
            "output_dir": str(out),
            "compute_type": "fp32",
            "disable_tqdm": True,
            "save_steps": 100,
        }
    )
    assert train(config).status == "finished"
    return out


def tiny_args(model_dir: Path) -> list[str]:
    return [
        f"model_name_or_path={model_dir}",
        "template=chatml",
        "compute_type=fp32",
        "max_new_tokens=8",
        "dataset_dir=builtin",
    ]


def test_predict_writes_one_line_per_record(tiny_model_dir: Path, tmp_path: Path) -> None:
    from tunelab import evaluate  # the Python API: the evaluate package is callable

    args = tiny_args(tiny_model_dir) + [
        "eval_dataset=identity_heldout",
        "max_samples=5",
        "predict_with_generate=true",
    ]
    result = evaluate(None, args, output_dir=tmp_path)
    lines = (tmp_path / "generated_predictions.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines]
    assert len(rows) == 5 and all(set(r) == {"prompt", "label", "predict"} for r in rows)
    heldout = json.loads(
        (Path(__file__).parents[2] / "src/tunelab/resources/data/identity_heldout.json").read_text()
    )
    assert [r["label"] for r in rows] == [h["output"] for h in heldout[:5]]  # record order kept
    assert rows[0]["prompt"].endswith("<|im_start|>assistant\n")
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    for key in (
        "eval_loss",
        "eval_perplexity",
        "predict_bleu-4",
        "predict_rouge-1",
        "predict_rouge-2",
        "predict_rouge-l",
    ):
        assert isinstance(metrics[key], float), key
    assert metrics["predict_samples"] == 5 and result.metrics["eval_loss"] == metrics["eval_loss"]


def test_compare_adapter_with_base_through_the_cli(
    tiny_model_dir: Path, random_adapter: Path, tmp_path: Path
) -> None:
    bench = tmp_path / "bench.jsonl"
    bench.write_text(
        "".join(
            json.dumps(
                {"subject": "math", "question": f"{i} + 1 = ?", "A": str(i + 1), "B": str(i), "answer": "A"}
            )
            + "\n"
            for i in range(4)
        )
    )
    out = tmp_path / "cmp"
    args = ["eval", *tiny_args(tiny_model_dir), "eval_dataset=identity_heldout", "max_samples=4", "n_shot=1"]
    args += [
        "--adapter",
        str(random_adapter),
        "--compare",
        "base",
        "--task",
        str(bench),
        "--output-dir",
        str(out),
    ]
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "before vs after" in result.stdout and "base (" in result.stdout and "delta" in result.stdout
    assert "eval_loss" in result.stdout and "mc_accuracy/math" in result.stdout
    summary = json.loads((out / "comparison.json").read_text())
    ref, cand = summary["reference"]["metrics"], summary["candidate"]["metrics"]
    assert ref["eval_loss"] != cand["eval_loss"]  # the adapter changed the model
    assert summary["delta"]["eval_loss"] == pytest.approx(cand["eval_loss"] - ref["eval_loss"])
    assert (out / "comparison.png").is_file() and (out / "reference" / "mc_predictions.jsonl").is_file()


def test_run_directory_and_its_base(tiny_run: Path, tmp_path: Path) -> None:
    from tunelab.evaluate.run import evaluate

    result = evaluate(tiny_run, ["max_new_tokens=4"], compare="base", output_dir=tmp_path)
    assert result.label == "sft-tiny" and result.reference is not None
    assert result.reference.label.startswith("base (")
    # the run's own split (val_size=4) is what both are scored on
    assert (
        result.metrics["eval_split"] == "eval"
        and result.reference.metrics["eval_tokens"] == result.metrics["eval_tokens"]
    )
    assert result.deltas()["eval_loss"] < 0  # two LoRA steps at a high LR lower the held-out loss
    default = evaluate(run=tiny_run, overrides=["task=tunelab_mc", "n_shot=0", "val_size=0"])
    assert default.output_dir.parent == tiny_run and default.output_dir.name.startswith("eval-")
    assert default.metrics["mc_n"] == 50 and "eval_loss" not in default.metrics


def test_nothing_to_evaluate_says_what_to_set(tiny_model_dir: Path) -> None:
    result = runner.invoke(app, ["eval", *tiny_args(tiny_model_dir)])
    assert (
        result.exit_code == 2 and "nothing to evaluate" in result.output and "Traceback" not in result.output
    )
    with pytest.raises(ConfigError, match="compare=base needs"):
        from tunelab.evaluate.run import evaluate

        evaluate(None, tiny_args(tiny_model_dir) + ["task=tunelab_mc"], compare="base")


def test_classifier_run_scores_like_training_did(tiny_model_dir: Path, tmp_path: Path) -> None:
    from tunelab.evaluate.run import evaluate
    from tunelab.train import train

    run = tmp_path / "cls-run"
    config = config_from_dict(
        {
            "model_name_or_path": str(tiny_model_dir),
            "stage": "cls",
            "dataset": "sentiment_en",
            "dataset_dir": "builtin",
            "cutoff_len": 64,
            "max_steps": 3,
            "per_device_train_batch_size": 16,
            "learning_rate": 5e-3,
            "output_dir": str(run),
            "compute_type": "fp32",
            "disable_tqdm": True,
            "save_steps": 100,
        }
    )
    trained = train(config).metrics
    result = evaluate(run, output_dir=tmp_path / "eval")
    # the same held-out test split, scored by the same metric code: the same figures as at the end of training
    for key in (
        "test_accuracy",
        "test_f1_macro",
        "test_precision_macro",
        "test_recall_macro",
        "test_samples",
    ):
        assert result.metrics[key] == pytest.approx(trained[key]), key
    assert result.metrics["test_loss"] == pytest.approx(trained["test_loss"], rel=1e-4)
    assert result.metrics["test_confusion_matrix"] == trained["test_confusion_matrix"]
    lines = (tmp_path / "eval" / "cls_predictions.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == trained["test_samples"] and (tmp_path / "eval" / "confusion_matrix.png").is_file()
    from tunelab import chat_engine

    with pytest.raises(ConfigError, match="it scores text"):
        chat_engine(run=run)  # a classifier has nothing to say: a clear error, not a loading traceback


def test_a_model_folder_is_read_like_model(tiny_model_dir: Path, tmp_path: Path) -> None:
    from tunelab.infer.source import resolve_config

    config = resolve_config(str(tiny_model_dir), ["template=chatml"])  # e.g. a `tunelab export` folder
    assert config.model.model_name_or_path == str(tiny_model_dir) and config.data.template == "chatml"
    exported = tmp_path / "run" / "export"  # export's default place: inside a run, yet a model folder
    exported.mkdir(parents=True)
    (exported / "config.json").write_text("{}")
    (tmp_path / "run" / "config.yaml").write_text(f"model_name_or_path: {tiny_model_dir}\n")
    assert resolve_config(str(exported)).model.model_name_or_path == str(exported)
    with pytest.raises(ConfigError, match="not a tunelab run directory"):
        resolve_config(str(tmp_path))
