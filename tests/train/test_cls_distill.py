"""Stage cls distillation: soft labels from a teacher cls run (kd_alpha, kd_temperature, kd_loss)."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from tunelab.config import config_from_dict, load_config
from tunelab.config.schema_kd import KDArgs
from tunelab.data.classification import LabelMap
from tunelab.errors import ConfigError, ModelError
from tunelab.runs import RunDir
from tunelab.train import train
from tunelab.train.cls_distill import attach_teacher_logits, soft_label_loss
from tunelab.train.runner import RunResult

from .test_stage_cls import cls_config

EXAMPLE = Path(__file__).parents[2] / "examples" / "kd_cls_tiny.yaml"


def _softmax(z: list[float], t: float) -> list[float]:
    e = [math.exp(v / t) for v in z]
    return [v / sum(e) for v in e]


def _kl(a: list[float], b: list[float]) -> float:
    return sum(x * math.log(x / y) for x, y in zip(a, b))


@pytest.mark.parametrize("kind", ["forward_kl", "reverse_kl", "jsd"])
def test_soft_label_loss_is_t_squared_times_the_divergence_of_the_softened_classes(kind: str) -> None:
    student, teacher, t, beta = (
        [[1.0, 0.0, -1.0], [0.5, 0.5, 2.0]],
        [[0.0, 2.0, 0.0], [3.0, 0.0, 1.0]],
        2.0,
        0.3,
    )
    expected = []
    for s, z in zip(student, teacher):
        p, q = _softmax(z, t), _softmax(s, t)
        if kind == "forward_kl":
            d = _kl(p, q)
        elif kind == "reverse_kl":
            d = _kl(q, p)
        else:
            m = [beta * a + (1 - beta) * b for a, b in zip(p, q)]
            d = beta * _kl(p, m) + (1 - beta) * _kl(q, m)
        expected.append(t * t * d)
    kd = KDArgs(kd_loss=kind, kd_temperature=t, kd_jsd_beta=beta)
    got = soft_label_loss(
        torch.tensor(student, dtype=torch.float64), torch.tensor(teacher, dtype=torch.float64), kd
    )
    assert got.item() == pytest.approx(sum(expected) / 2, rel=1e-6)  # computed in fp32


def test_the_trainer_mixes_soft_labels_and_hard_label_ce_by_kd_alpha(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    from transformers import TrainingArguments

    from tunelab.model.classifier import load_classifier
    from tunelab.train.stages.cls import ClassificationTrainer

    config = cls_config(tiny_model_dir, tmp_path)
    model, _ = load_classifier(config.model, {0: "a", 1: "b"}, pad_token_id=0, compute_dtype=torch.float32)
    ids = torch.tensor([[5, 6, 7], [8, 9, 10]])
    teacher = torch.tensor([[2.0, -1.0], [0.0, 1.0]])
    labels = torch.tensor([0, 1])
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits.float()
    t, alpha = 2.0, 0.7
    soft = (
        sum(t * t * _kl(_softmax(z, t), _softmax(s, t)) for z, s in zip(teacher.tolist(), logits.tolist()))
        / 2
    )
    ce = torch.nn.functional.cross_entropy(logits, labels).item()
    trainer = ClassificationTrainer(
        model=model,
        args=TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none"),
        training=config.training,
        finetuning=config.finetuning,
        kd=KDArgs(kd_alpha=alpha, kd_temperature=t),
    )
    batch = {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "labels": labels,
        "teacher_logits": teacher,
    }
    with torch.no_grad():
        loss = trainer.compute_loss(model, batch).item()
    assert loss == pytest.approx(alpha * soft + (1 - alpha) * ce, rel=1e-5)


def test_teacher_logits_are_reordered_to_the_students_classes() -> None:
    from datasets import Dataset

    teacher = SimpleNamespace(
        label_map=LabelMap(("space", "animals")),
        logits=lambda texts: torch.tensor([[1.0, 2.0] if "cat" in t else [3.0, 4.0] for t in texts]),
    )
    tokenizer = lambda texts: {"input_ids": [[1] if t else [] for t in texts]}  # noqa: E731
    train_set = Dataset.from_dict({"labels": [0, 1]})
    out = attach_teacher_logits(
        train_set, ["cat", "", "rocket"], tokenizer, teacher, LabelMap(("animals", "space"))
    )
    # the empty text was dropped by tokenization, so it is dropped here too
    assert out["teacher_logits"] == [[2.0, 1.0], [4.0, 3.0]]


@pytest.fixture(scope="module")
def teacher_run(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    """A tiny:llama cls teacher, fully fine-tuned on the synthetic topics."""
    out = tmp_path_factory.mktemp("cls-teacher") / "run"
    return train(cls_config(tiny_model_dir, out, max_steps=30, eval_strategy="no", save_steps=1000))


def _student(model_dir: Path, teacher: Path, out: Path, **overrides: Any):
    return cls_config(
        model_dir,
        out,
        teacher_model_name_or_path=str(teacher),
        max_steps=6,
        eval_steps=6,
        save_steps=1000,
        **overrides,
    )


def test_kd_alpha_zero_trains_exactly_what_plain_cls_trains(
    teacher_run: RunResult, tiny_model_dir: Path, tmp_path: Path
) -> None:
    kd = train(_student(tiny_model_dir, teacher_run.run_dir, tmp_path / "kd", kd_alpha=0.0))
    plain = train(cls_config(tiny_model_dir, tmp_path / "plain", max_steps=6, eval_steps=6, save_steps=1000))
    assert kd.metrics["teacher"] == str(teacher_run.run_dir) and "teacher" not in plain.metrics
    kd_log, plain_log = (
        [(r["loss"], r["grad_norm"]) for r in RunDir(r.run_dir).read_log() if "loss" in r]
        for r in (kd, plain)
    )
    assert kd_log == plain_log and len(kd_log) >= 1
    kd_w, plain_w = (load_file(r.run_dir / "model.safetensors") for r in (kd, plain))
    assert all(kd_w[k].equal(plain_w[k]) for k in plain_w)
    assert kd.metrics["test_accuracy"] == plain.metrics["test_accuracy"]


@pytest.mark.slow
@pytest.mark.ci
def test_the_example_distils_a_teacher_run_into_an_encoder_with_its_own_tokenizer(
    teacher_run: RunResult, tiny_cache_dir: Path, tmp_path: Path
) -> None:
    """examples/kd_cls_tiny.yaml (shortened): the tiny Llama teacher run -> a tiny BERT student."""
    overrides = [
        f"teacher_model_name_or_path={teacher_run.run_dir}",
        f"cache_dir={tiny_cache_dir}",
        f"output_dir={tmp_path / 'student'}",
        "max_steps=6",
        "eval_steps=3",
        "logging_steps=3",
        "disable_tqdm=true",
    ]
    result = train(load_config(EXAMPLE, overrides))
    assert result.status == "finished" and 0 <= result.metrics["test_accuracy"] <= 1
    assert result.metrics["teacher"] == str(teacher_run.run_dir)
    losses = [r["loss"] for r in RunDir(result.run_dir).read_log() if "loss" in r]
    assert losses and all(math.isfinite(v) for v in losses)


def test_a_teacher_with_other_classes_is_refused_naming_both(
    teacher_run: RunResult, tiny_model_dir: Path, tmp_path: Path
) -> None:
    data = tmp_path / "colours.csv"
    rows = [f"the {w} thing,{c}" for w, c in [("red", "warm"), ("blue", "cold")] * 10]
    data.write_text("text,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    with pytest.raises(ModelError) as err:
        train(_student(tiny_model_dir, teacher_run.run_dir, tmp_path / "s", dataset=str(data)))
    message = str(err.value)
    assert "animals, cooking, space" in message and "cold, warm" in message and str(data) in message


def test_stage_kd_only_keys_are_refused_for_cls(tiny_model_dir: Path) -> None:
    base = {"model_name_or_path": str(tiny_model_dir), "stage": "cls", "teacher_model_name_or_path": "runs/t"}
    for key, value in (("kd_topk", 8), ("kd_teacher_cache", "c"), ("teacher_adapter_name_or_path", "a")):
        with pytest.raises(ConfigError, match=f"{key} is for stage kd"):
            config_from_dict({**base, key: value})
