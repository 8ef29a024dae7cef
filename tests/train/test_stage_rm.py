"""Stage rm: a value head on the causal LM learns to score chosen above rejected; the run scores text later."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from tunelab.errors import ModelError
from tunelab.evaluate.reward import load_reward_model, score_replies
from tunelab.runs import RunDir

HELD_OUT = [  # prompts that occur in no bundled file
    (
        "What is 7 + 5?",
        "Sure! 7 + 5 = 12. I hope this helps!",
        "Ugh, 7 + 5 = 12. Figure it out yourself next time.",
    ),
    (
        "How do I fold a paper plane?",
        "Of course. Fold the paper in half, then fold the corners to the middle.",
        "Not my problem.",
    ),
    (
        "Spell the word cat backwards.",
        "Happy to help! cat backwards is tac.",
        "Whatever. cat backwards is atc.",
    ),
    (
        "Which is bigger: 3 or 30?",
        "Certainly! 30 is larger. Have a nice day!",
        "Seriously? 3 is larger. Don't bother me again.",
    ),
]


def test_rm_accuracy_and_margin_rise_and_land_in_the_run_directory(rm_run) -> None:
    run = RunDir(rm_run.run_dir)
    evals = [row for row in run.read_log() if "eval_accuracy" in row]
    assert evals[0]["current_steps"] == 0  # evaluated once before training: where accuracy started
    first, last = evals[0], evals[-1]
    assert last["eval_accuracy"] >= 0.8 and last["eval_accuracy"] >= first["eval_accuracy"]
    assert last["eval_margin"] > first["eval_margin"] + 1.0
    train_rows = [row for row in run.read_log() if "accuracy" in row]
    assert all(math.isfinite(row["loss"]) and math.isfinite(row["margin"]) for row in train_rows)
    assert train_rows[-1]["loss"] < train_rows[0]["loss"]
    metrics = run.read_metrics()
    assert metrics["eval_accuracy"] == last["eval_accuracy"] and "eval_margin" in metrics
    assert "eval_perplexity" not in metrics  # a pairwise loss has no perplexity
    # the model is saved exactly as an sft run would be, the head beside it
    assert (run.path / "adapter_model.safetensors").is_file() and (
        run.path / "value_head.safetensors"
    ).is_file()
    from safetensors import safe_open

    with safe_open(str(run.path / "adapter_model.safetensors"), "pt") as f:
        assert not [k for k in f.keys() if "v_head" in k]


def test_saved_reward_model_scores_polite_replies_above_rude_ones(rm_run) -> None:
    reward_model = load_reward_model(rm_run.run_dir)
    prompts = [p for p, _, _ in HELD_OUT]
    good = reward_model.score_replies(prompts, [g for _, g, _ in HELD_OUT])
    bad = reward_model.score_replies(prompts, [b for _, _, b in HELD_OUT])
    assert sum(g > b for g, b in zip(good, bad)) >= 3
    # score_texts scores an already rendered conversation exactly like score_replies renders it
    prompt_ids, reply_ids = _rendered(reward_model, prompts[0], HELD_OUT[0][1])
    text = reward_model.tokenizer.decode(prompt_ids + reply_ids)
    assert reward_model.score_texts([text])[0] == pytest.approx(good[0], abs=1e-4)
    # the module-level function loads the model itself
    assert score_replies(rm_run.run_dir, prompts[:1], [HELD_OUT[0][1]])[0] == pytest.approx(good[0], abs=1e-4)


def _rendered(reward_model, prompt: str, reply: str) -> tuple[list[int], list[int]]:
    from tunelab.data.tokenize_pref import encode_reply

    return encode_reply(
        [{"role": "user", "content": prompt}], reply, reward_model.tokenizer, reward_model.template
    )


def test_full_finetuned_reward_model_saves_a_plain_causal_lm(
    tiny_model_dir: Path, tmp_path: Path, pref_config
) -> None:
    from transformers import AutoModelForCausalLM

    from tunelab.train import train

    result = train(
        pref_config(tiny_model_dir, tmp_path / "rm-full", stage="rm", finetuning_type="full", max_steps=2)
    )
    model, info = AutoModelForCausalLM.from_pretrained(result.run_dir, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]  # no v_head inside the model weights
    scores = load_reward_model(result.run_dir).score_replies(["What is 7 + 5?"], ["Sure! 12."])
    assert math.isfinite(scores[0])


def test_load_reward_model_refuses_what_is_not_a_reward_model(rm_run, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no config.yaml"):
        load_reward_model(tmp_path)
    config = yaml.safe_load((Path(rm_run.run_dir) / "config.yaml").read_text())
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({**config, "stage": "sft"}))
    with pytest.raises(ModelError, match="stage: sft, not rm"):
        load_reward_model(tmp_path)


def test_resume_continues_with_the_checkpointed_value_head(rm_run, tmp_path: Path) -> None:
    """Resuming from checkpoint-8 reproduces the uninterrupted run's step 9: the head came back too."""
    import shutil

    from tunelab.config import load_config
    from tunelab.train import train

    copy = tmp_path / "run"
    shutil.copytree(rm_run.run_dir, copy)
    checkpoint = copy / "checkpoint-8"
    assert (checkpoint / "value_head.safetensors").is_file()
    overrides = [
        f"output_dir={copy}",
        f"resume_from_checkpoint={checkpoint}",
        "max_steps=9",
        'eval_strategy="no"',
    ]
    train(load_config(copy / "config.yaml", overrides))
    resumed = next(row for row in RunDir(copy).read_log() if row["current_steps"] == 9 and "loss" in row)
    original = next(
        row for row in RunDir(rm_run.run_dir).read_log() if row["current_steps"] == 9 and "loss" in row
    )
    assert resumed["loss"] == pytest.approx(original["loss"], rel=1e-4)
