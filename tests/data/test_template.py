"""Chat templates: exact token ids per turn, built by hand from the format pieces."""

from __future__ import annotations

import json

import pytest
from transformers import AutoTokenizer

from tunelab.data.template import TEMPLATES, get_template
from tunelab.data.tools import render_tools
from tunelab.errors import ConfigError, DataError

LLAMA3_TOKENS = ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
GLM_TOKENS = ["[gMASK]", "sop", "<|system|>", "<|user|>", "<|assistant|>", "<|observation|>"]

TWO_TURNS = [
    {"role": "user", "content": "What is two plus two?"},
    {"role": "assistant", "content": "Four."},
    {"role": "user", "content": "And three plus three?"},
    {"role": "assistant", "content": "Six, of course."},
]


def tokenizer_with(tiny_model_dir, tokens, **attrs):
    """A private copy of the tiny tokenizer with extra special tokens (the shared one stays untouched)."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.add_tokens(tokens, special_tokens=True)
    for name, value in attrs.items():
        setattr(tokenizer, name, value)
    return tokenizer


def enc(tokenizer, text):
    return tokenizer.encode(text, add_special_tokens=False)


def tid(tokenizer, token):
    token_id = tokenizer.convert_tokens_to_ids(token)
    assert isinstance(token_id, int)
    return token_id


def test_default_template_exact_ids(tiny_tokenizer):
    tok = tiny_tokenizer
    eos = tok.eos_token_id
    turns = get_template("default", tok).encode_turns(tok, TWO_TURNS[:2], system="Be brief.")
    prompt = enc(tok, "System: Be brief.") + [eos] + enc(tok, "\n")
    prompt += enc(tok, "Human: What is two plus two?") + [eos] + enc(tok, "\nAssistant:")
    assert turns == [(prompt, enc(tok, "Four.") + [eos] + enc(tok, "\n"))]


def test_chatml_template_exact_ids_two_turns(tiny_tokenizer):
    tok = tiny_tokenizer
    start, end = tid(tok, "<|im_start|>"), tid(tok, "<|im_end|>")
    nl = enc(tok, "\n")
    turns = get_template("chatml", tok).encode_turns(tok, TWO_TURNS, system="Be brief.")
    prompt1 = [start] + enc(tok, "system\nBe brief.") + [end] + nl
    prompt1 += (
        [start] + enc(tok, "user\nWhat is two plus two?") + [end] + nl + [start] + enc(tok, "assistant\n")
    )
    prompt2 = (
        [start] + enc(tok, "user\nAnd three plus three?") + [end] + nl + [start] + enc(tok, "assistant\n")
    )
    assert turns == [
        (prompt1, enc(tok, "Four.") + [end] + nl),
        (prompt2, enc(tok, "Six, of course.") + [end] + nl),
    ]


def test_llama3_template_exact_ids(tiny_model_dir):
    tok = tokenizer_with(tiny_model_dir, LLAMA3_TOKENS)
    bot, sh, eh, eot = (tid(tok, t) for t in LLAMA3_TOKENS)

    def header(role):
        return [sh] + enc(tok, role) + [eh]

    template = get_template("llama3", tok)
    turns = template.encode_turns(tok, TWO_TURNS[:2], system="Be brief.")
    prompt = [bot] + header("system") + enc(tok, "\n\nBe brief.") + [eot]
    prompt += (
        header("user")
        + enc(tok, "\n\nWhat is two plus two?")
        + [eot]
        + header("assistant")
        + enc(tok, "\n\n")
    )
    assert turns == [(prompt, enc(tok, "Four.") + [eot])]
    assert template.adds_bos is False  # BOS comes as the literal <|begin_of_text|> token
    assert template.stop_token_ids(tok) == [tok.eos_token_id, eot]  # <|eom_id|> is not in this vocabulary


def test_tokenizer_template_matches_the_chat_template_pieces(tiny_tokenizer):
    tok = tiny_tokenizer
    template = get_template("tokenizer", tok)
    turns = template.encode_turns(tok, TWO_TURNS, system="Be brief.")
    # The tiny tokenizer's chat template is ChatML, so its split must equal the chatml template's ...
    assert turns == get_template("chatml", tok).encode_turns(tok, TWO_TURNS, system="Be brief.")
    # ... and the turns concatenate to the tokenizer's own rendering of the conversation.
    conversation = [{"role": "system", "content": "Be brief."}] + TWO_TURNS
    whole = enc(tok, tok.apply_chat_template(conversation, tokenize=False))
    assert [i for p, r in turns for i in p + r] == whole
    prompt = template.encode_prompt(tok, TWO_TURNS[:3], system="Be brief.")
    assert prompt == enc(
        tok, tok.apply_chat_template(conversation[:4], tokenize=False, add_generation_prompt=True)
    )


def test_tokenizer_template_rejects_a_chat_template_that_rewrites_history(tiny_model_dir):
    marks_last = (
        "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] }}"
        "{% if loop.last %}{{ ' (last)' }}{% endif %}{{ '<|im_end|>\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
    )
    tok = tokenizer_with(tiny_model_dir, [], chat_template=marks_last)
    with pytest.raises(ConfigError, match="named template of the model"):
        get_template("tokenizer", tok).encode_turns(tok, TWO_TURNS)


@pytest.mark.parametrize("name", ["default", "empty", "chatml", "qwen", "mistral", "alpaca", "tokenizer"])
def test_turns_concatenate_to_prompt_plus_response(tiny_tokenizer, name):
    tok = tiny_tokenizer
    template = get_template(name, tok)
    turns = template.encode_turns(tok, TWO_TURNS, system="Be brief.")
    whole = [i for p, r in turns for i in p + r]
    assert whole == template.encode_prompt(tok, TWO_TURNS, system="Be brief.") + turns[-1][1]
    assert all(p and r for p, r in turns)


def test_mistral_glues_system_to_first_user_message(tiny_tokenizer):
    tok = tiny_tokenizer
    turns = get_template("mistral", tok).encode_turns(tok, TWO_TURNS, system="Be brief.")
    assert turns[0][0] == enc(tok, "[INST] Be brief.\n\nWhat is two plus two?[/INST]")  # tiny has no BOS
    assert turns[0][1] == enc(tok, " Four.") + [tok.eos_token_id]
    assert turns[1][0] == enc(tok, "[INST] And three plus three?[/INST]")


def test_alpaca_uses_its_default_system(tiny_tokenizer):
    tok = tiny_tokenizer
    template = get_template("alpaca", tok)
    prompt = template.encode_turns(tok, TWO_TURNS[:2])[0][0]
    assert prompt == enc(
        tok, template.default_system + "\n\n### Instruction:\nWhat is two plus two?\n\n### Response:\n"
    )


def test_chatglm3_learns_to_emit_the_next_stop_token(tiny_model_dir):
    tok = tokenizer_with(tiny_model_dir, GLM_TOKENS)
    gmask, sop, _, user, assistant, _ = (tid(tok, t) for t in GLM_TOKENS)
    template = get_template("chatglm3", tok)
    turns = template.encode_turns(tok, TWO_TURNS)
    assert turns[0][0] == [gmask, sop, user] + enc(tok, "\nWhat is two plus two?") + [assistant]
    # efficient EOS: the <|user|> that opens the next turn is learned as the end of this response,
    assert turns[0][1] == enc(tok, "\nFour.") + [user]
    assert turns[1][0] == enc(tok, "\nAnd three plus three?") + [assistant]
    # and the last response ends with EOS.
    assert turns[1][1] == enc(tok, "\nSix, of course.") + [tok.eos_token_id]
    assert template.stop_token_ids(tok) == [tok.eos_token_id, user, tid(tok, "<|observation|>")]


def test_leading_system_message_becomes_the_system_prompt(tiny_tokenizer):
    tok = tiny_tokenizer
    template = get_template("chatml", tok)
    with_message = template.encode_turns(tok, [{"role": "system", "content": "Be brief."}] + TWO_TURNS)
    assert with_message == template.encode_turns(tok, TWO_TURNS, system="Be brief.")


def test_qwen_renders_tools_and_its_default_system(tiny_tokenizer):
    tok = tiny_tokenizer
    tools = json.dumps([{"name": "add", "description": "add numbers", "parameters": {"type": "object"}}])
    template = get_template("qwen", tok)
    text = tok.decode(template.encode_turns(tok, TWO_TURNS[:2], tools=tools)[0][0])
    assert text.startswith("<|im_start|>system\n" + template.default_system + "\n\n# Tools\n")
    assert '<tools>\n{"type": "function", "function": {"name": "add"' in text
    assert render_tools("", "qwen") == ""
    with pytest.raises(DataError, match="not valid JSON"):
        render_tools("[{", "default")


def test_encode_prompt_ends_with_the_assistant_header(tiny_tokenizer):
    tok = tiny_tokenizer
    prompt = get_template("chatml", tok).encode_prompt(tok, [{"role": "user", "content": "Hi"}])
    assert tok.decode(prompt) == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"


def test_get_template_defaults_and_errors(tiny_model_dir, tiny_tokenizer):
    assert get_template(None, tiny_tokenizer).name == "tokenizer"
    plain = tokenizer_with(tiny_model_dir, [], chat_template=None)
    assert get_template(None, plain).name == "default"
    with pytest.raises(ConfigError, match="chat_template"):
        get_template("tokenizer", plain)
    with pytest.raises(ConfigError) as err:
        get_template("chatm", tiny_tokenizer)
    assert "did you mean 'chatml'" in err.value.hint
    with pytest.raises(ConfigError, match="<|begin_of_text|>"):
        get_template("llama3", tiny_tokenizer)  # the tiny vocabulary has no Llama-3 tokens
    assert {
        "default",
        "empty",
        "chatml",
        "qwen",
        "llama3",
        "chatglm3",
        "mistral",
        "alpaca",
        "tokenizer",
    } <= set(TEMPLATES)


def test_with_options_overrides_default_system_and_checks_tool_format(tiny_tokenizer):
    template = get_template("chatml", tiny_tokenizer).with_options(default_system="Be kind.")
    turns = template.encode_turns(tiny_tokenizer, TWO_TURNS[:2])
    assert tiny_tokenizer.decode(turns[0][0]).startswith("<|im_start|>system\nBe kind.<|im_end|>")
    with pytest.raises(ConfigError, match="tool_format"):
        template.with_options(tool_format="xml")


@pytest.mark.parametrize(
    ("messages", "match"),
    [
        ([], "no messages"),
        ([{"role": "assistant", "content": "x"}], "role 'assistant'"),
        ([{"role": "user", "content": "x"}, {"role": "user", "content": "y"}], "role 'user'"),
        ([{"role": "user", "content": "x"}], "no response"),
    ],
)
def test_malformed_conversations_raise_data_errors(tiny_tokenizer, messages, match):
    with pytest.raises(DataError, match=match):
        get_template("chatml", tiny_tokenizer).encode_turns(tiny_tokenizer, messages)
