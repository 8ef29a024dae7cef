"""The smollm2 template against the chat template SmolLM2's GGUF ships (real tokenizer, offline; slow)."""

from __future__ import annotations

import pytest

from tunelab.data.template import get_template

TWO_TURNS = [
    {"role": "user", "content": "What is two plus two?"},
    {"role": "assistant", "content": "Four."},
    {"role": "user", "content": "And three plus three?"},
    {"role": "assistant", "content": "Six, of course."},
]


@pytest.mark.slow
@pytest.mark.parametrize("system", ["", "Be brief."])
def test_smollm2_template_matches_the_gguf_chat_template(system: str) -> None:
    from transformers import AutoTokenizer

    from tunelab.model.resolve import resolve_model_path

    tok = AutoTokenizer.from_pretrained(resolve_model_path("smollm2"))
    # with no system prompt both insert SmolLM2's default one
    conversation = ([{"role": "system", "content": system}] if system else []) + TWO_TURNS
    whole = tok.encode(tok.apply_chat_template(conversation, tokenize=False), add_special_tokens=False)
    for name in ("smollm2", "tokenizer"):
        turns = get_template(name, tok).encode_turns(tok, TWO_TURNS, system=system)
        assert [i for p, r in turns for i in p + r] == whole, name
