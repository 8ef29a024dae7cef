"""On-policy kd steps (kd_on_policy_ratio, GKD): which steps, what the student generates, what trains."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from tunelab.config import GenerationArgs, config_from_dict
from tunelab.data.collator import SupervisedCollator
from tunelab.errors import ConfigError
from tunelab.runs import RunDir
from tunelab.train import train
from tunelab.train.kd_on_policy import OnPolicySampler, is_on_policy_step, prompts_of

from .test_stage_kd import KD, kd_config

IGNORE = -100


def test_the_on_policy_steps_follow_the_ratio_and_replay_from_the_seed() -> None:
    steps = range(2000)
    assert not any(is_on_policy_step(42, s, 0.0) for s in steps)
    assert all(is_on_policy_step(42, s, 1.0) for s in steps)
    chosen = [is_on_policy_step(42, s, 0.3) for s in steps]
    assert 0.26 < sum(chosen) / len(chosen) < 0.34
    # a resumed run asks again for the same steps and gets the same answers; another seed differs
    assert chosen == [is_on_policy_step(42, s, 0.3) for s in steps]
    assert chosen != [is_on_policy_step(7, s, 0.3) for s in steps]


def test_the_prompt_is_everything_before_the_last_response() -> None:
    ids = torch.tensor([[1, 2, 3, 4, 5, 6, 7, 0], [1, 2, 3, 4, 0, 0, 0, 0]])
    labels = torch.tensor(
        [
            [IGNORE, IGNORE, 3, 4, IGNORE, 6, 7, IGNORE],
            [IGNORE, IGNORE, IGNORE, 4, IGNORE, IGNORE, IGNORE, IGNORE],
        ]
    )
    mask = torch.tensor([[1] * 7 + [0], [1] * 4 + [0] * 4])
    # multi-turn: the first answer (3, 4) stays in the context of the second
    assert prompts_of(ids, labels, mask) == [[1, 2, 3, 4, 5], [1, 2, 3]]


def _sampler(**overrides: Any) -> OnPolicySampler:
    values: dict[str, Any] = {
        "ratio": 1.0,
        "seed": 42,
        "generation": GenerationArgs(temperature=1.0, top_p=1.0, top_k=0),
        "max_new_tokens": 6,
        "cutoff_len": 64,
        "stop_ids": (5,),
        "pad_token_id": 0,
    }
    return OnPolicySampler(**{**values, **overrides})


def test_the_labels_cover_exactly_the_tokens_the_student_generated(tiny_model_dir: Path) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    collate = SupervisedCollator(pad_token_id=0)
    prompts = [[11, 12, 13, 14], [21, 22]]
    batch = collate(
        [
            {"input_ids": prompts[0] + [30, 31, 32], "labels": [IGNORE] * 4 + [30, 31, 32]},
            {"input_ids": prompts[1] + [40], "labels": [IGNORE] * 2 + [40]},
        ]
    )
    model.train()
    sampler = _sampler()
    out = sampler.rollout(model, batch, collate, step=3)
    assert model.training  # sampling ran in eval mode and gave the model back in train mode
    for row, prompt in enumerate(prompts):
        n = int(out["attention_mask"][row].sum())
        ids, labels = out["input_ids"][row].tolist(), out["labels"][row].tolist()
        generated = ids[len(prompt) : n]
        assert ids[: len(prompt)] == prompt and labels[: len(prompt)] == [IGNORE] * len(prompt)
        assert labels[len(prompt) : n] == generated and IGNORE not in generated
        assert labels[n:] == [IGNORE] * (len(labels) - n)
        # the response stops at the first stop token, else at max_new_tokens
        assert 1 <= len(generated) <= 6 and 5 not in generated[:-1]
        assert generated[-1] == 5 or len(generated) == 6
    # the same step samples the same responses again (resume), another step samples anew
    again = sampler.rollout(model, batch, collate, step=3)
    assert torch.equal(again["input_ids"], out["input_ids"])
    others = [sampler.rollout(model, batch, collate, step=s)["input_ids"] for s in range(4, 8)]
    assert any(o.shape != out["input_ids"].shape or not torch.equal(o, out["input_ids"]) for o in others)
    # prompt + response never exceeds cutoff_len
    short = _sampler(cutoff_len=6).rollout(model, batch, collate, step=3)
    assert short["input_ids"].shape[1] <= 6


def test_ratio_one_generates_and_trains_on_the_kd_loss_alone(
    tiny_model_dir: Path, tiny_qwen2_dir: Path, tmp_path: Path
) -> None:
    overrides = {"kd_on_policy_ratio": 1.0, "kd_max_new_tokens": 8, "kd_alpha": 0.5, "max_steps": 4}
    result = train(kd_config(tiny_model_dir, tiny_qwen2_dir, tmp_path / "on", **overrides))
    assert result.status == "finished"
    rows = [r for r in RunDir(result.run_dir).read_log() if "loss" in r]
    assert len(rows) == 2
    for row in rows:
        assert row["on_policy_share"] == 1.0
        assert "ce_loss" not in row  # no reference labels on on-policy steps, so no CE term
        assert row["loss"] == pytest.approx(row["kd_loss"], rel=1e-4)  # KD alone, whatever kd_alpha
        assert row["kd_loss"] > 0 and row["grad_norm"] > 0
    adapter = load_file(result.run_dir / "adapter_model.safetensors")
    assert any(t.abs().sum() > 0 for name, t in adapter.items() if "lora_B" in name)  # parameters moved


def test_ratio_zero_is_the_off_policy_stage_unchanged(
    tiny_model_dir: Path, tiny_qwen2_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kd_on_policy_ratio=0 trains exactly what the stage trained before on-policy steps existed."""
    from tunelab.train.kd_trainer import KDTrainer
    from tunelab.train.trainer import TunelabTrainer

    explicit = train(
        kd_config(tiny_model_dir, tiny_qwen2_dir, tmp_path / "zero", kd_on_policy_ratio=0.0, max_steps=4)
    )
    monkeypatch.setattr(KDTrainer, "training_step", TunelabTrainer.training_step)
    plain = train(kd_config(tiny_model_dir, tiny_qwen2_dir, tmp_path / "plain", max_steps=4))
    a_rows, b_rows = ([r for r in RunDir(r.run_dir).read_log() if "loss" in r] for r in (explicit, plain))
    assert len(a_rows) == len(b_rows) == 2
    for a, b in zip(a_rows, b_rows):
        assert "on_policy_share" not in a and "ce_loss" in a
        assert (a["loss"], a["kd_loss"], a["ce_loss"], a["grad_norm"]) == (
            b["loss"],
            b["kd_loss"],
            b["ce_loss"],
            b["grad_norm"],
        )
    a_w, b_w = (load_file(r.run_dir / "adapter_model.safetensors") for r in (explicit, plain))
    assert all(a_w[k].equal(b_w[k]) for k in b_w)


def test_on_policy_needs_a_live_teacher_and_stage_kd(tiny_model_dir: Path) -> None:
    base = {**KD, "model_name_or_path": str(tiny_model_dir), "kd_on_policy_ratio": 0.5}
    with pytest.raises(ConfigError, match="needs a live teacher") as err:
        config_from_dict({**base, "kd_teacher_cache": "runs/cache"})
    assert "kd_teacher_cache only holds the teacher's log-probs" in str(err.value)
    assert "teacher_model_name_or_path instead" in str(err.value)
    with pytest.raises(ConfigError, match="but stage is sft"):
        config_from_dict({**base, "stage": "sft"})
    with pytest.raises(ConfigError, match="train_on_prompt"):
        config_from_dict({**base, "teacher_model_name_or_path": "x", "train_on_prompt": True})
    with pytest.raises(ConfigError, match="kd_on_policy_ratio"):
        config_from_dict({**base, "teacher_model_name_or_path": "x", "kd_on_policy_ratio": 1.5})


@pytest.mark.slow
@pytest.mark.ci
def test_a_resumed_run_replays_the_same_on_policy_steps_and_samples(
    tiny_model_dir: Path, tiny_qwen2_dir: Path, tmp_path: Path
) -> None:
    overrides = {
        "kd_on_policy_ratio": 0.5,
        "kd_max_new_tokens": 8,
        "max_steps": 6,
        "save_steps": 2,
        "logging_steps": 1,
        "lora_dropout": 0.1,
    }
    reference = train(kd_config(tiny_model_dir, tiny_qwen2_dir, tmp_path / "ref", **overrides))
    resumed = train(
        kd_config(
            tiny_model_dir,
            tiny_qwen2_dir,
            tmp_path / "resumed",
            resume_from_checkpoint=str(reference.run_dir / "checkpoint-2"),
            **overrides,
        )
    )

    def rows(result: Any) -> list[tuple[Any, ...]]:
        keys = ("current_steps", "loss", "kd_loss", "on_policy_share", "grad_norm")
        return [tuple(r.get(k) for k in keys) for r in RunDir(result.run_dir).read_log() if "loss" in r]

    ref_rows, resumed_rows = ([r for r in rows(x) if r[0] > 2] for x in (reference, resumed))
    assert resumed_rows == ref_rows and len(ref_rows) == 4
    shares = [r[3] for r in resumed_rows]
    assert set(shares) == {0.0, 1.0}  # both kinds of step were replayed
    ref_w, res_w = (load_file(r.run_dir / "adapter_model.safetensors") for r in (reference, resumed))
    assert all(ref_w[k].equal(res_w[k]) for k in ref_w)
