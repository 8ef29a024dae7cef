"""Batched generation with left padding gives the same greedy answers as one question at a time."""

from __future__ import annotations

from pathlib import Path

from transformers import AutoModelForCausalLM

from tunelab.config import GenerationArgs
from tunelab.data.template import get_template
from tunelab.infer.generate import generate_answers


def test_batched_equals_single(tiny_model_dir: Path, tiny_tokenizer) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    template = get_template("chatml", tiny_tokenizer)
    questions = ["What is a learning rate?", "Hi", "Tell me about rank and alpha in LoRA adapters."]
    generation = GenerationArgs(max_new_tokens=12, do_sample=False)  # greedy: two ways, one answer
    batched = generate_answers(model, tiny_tokenizer, template, questions, generation, batch_size=3)
    single = [generate_answers(model, tiny_tokenizer, template, [q], generation)[0] for q in questions]
    assert batched == single
    assert all(isinstance(a, str) for a in batched) and any(batched)
