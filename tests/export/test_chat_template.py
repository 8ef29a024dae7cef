"""A tunelab template written as Jinja renders exactly the prompt training used."""

from __future__ import annotations

import pytest

from tunelab.data.template import TEMPLATES, get_template
from tunelab.export.chat_template import template_to_jinja

CONVERSATIONS = [
    [{"role": "user", "content": 'Hi "there", 你好\\n'}],
    [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Name a colour."},
        {"role": "assistant", "content": "Blue."},
        {"role": "user", "content": "Another?"},
    ],
]


@pytest.mark.parametrize("name", ["default", "empty", "chatml", "qwen", "qwen3_nothink", "mistral", "alpaca"])
def test_jinja_renders_the_training_prompt(name: str, tiny_tokenizer) -> None:
    template = get_template(name, tiny_tokenizer)
    jinja = template_to_jinja(template, tiny_tokenizer)
    assert jinja is not None
    for messages in CONVERSATIONS:
        rendered = tiny_tokenizer.apply_chat_template(messages, tokenize=False, chat_template=jinja)
        expected = tiny_tokenizer.decode(template.encode_prompt(tiny_tokenizer, messages, "", ""))
        assert rendered == expected


def test_tokenizer_template_is_kept(tiny_tokenizer) -> None:
    assert template_to_jinja(TEMPLATES["tokenizer"], tiny_tokenizer) is None


def test_thinking_template_keeps_the_models_own_template(tiny_model_dir) -> None:
    # qwen3 follows the model's own template, which renders the <think> blocks the flat Jinja cannot;
    # a tokenizer without a template of its own still gets the flat one.
    from transformers import AutoTokenizer

    assert template_to_jinja(TEMPLATES["qwen3"], AutoTokenizer.from_pretrained(tiny_model_dir)) is None
    plain = AutoTokenizer.from_pretrained(tiny_model_dir)
    plain.chat_template = None
    assert template_to_jinja(TEMPLATES["qwen3"], plain) is not None
