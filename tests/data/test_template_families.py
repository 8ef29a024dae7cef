"""Named templates against each model's own chat template: a multi-turn conversation with a system prompt
is rendered by tunelab and by the official Jinja file (tests/data/fixtures/chat_templates/, sources in
SOURCES.md) through ``apply_chat_template``, and the texts must match; so must every turn's prompt
against the official generation prompt. The tiny tokenizer gets each family's special tokens, so the
comparison is about the format, not the vocabulary.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from tunelab.data.template import TEMPLATES, ReasoningTemplate, get_template
from tunelab.data.template_reasoning import split_reasoning

FIXTURES = Path(__file__).parent / "fixtures" / "chat_templates"
SYSTEM = "Be brief."
TWO_TURNS = [
    {"role": "user", "content": "What is two plus two?"},
    {"role": "assistant", "content": "Four."},
    {"role": "user", "content": "And three plus three?"},
    {"role": "assistant", "content": "Six, of course."},
]
REASONED = TWO_TURNS[:3] + [
    {"role": "assistant", "content": "<think>Three and three.</think>Six, of course."}
]


@functools.cache
def family_tokenizer(model_dir: Path, template_name: str, bos: str | None = None, eos: str | None = None):
    """The tiny tokenizer plus the special tokens `template_name` is built on, and a real BOS/EOS.

    Cached: no test changes a tokenizer after this.
    """
    tok = AutoTokenizer.from_pretrained(model_dir)
    template = TEMPLATES[template_name]
    tokens = [t for t in template.required_tokens + template.stop_words if t]
    tokens += [t for t in ("<think>", "</think>", bos, eos) if t]
    tok.add_tokens(sorted(set(tokens)), special_tokens=True)
    if bos:
        tok.bos_token = bos
    if eos:
        tok.eos_token = eos
    return tok


def official(tok, fixture: str, messages, **kwargs) -> str:
    chat_template = (FIXTURES / fixture).read_text(encoding="utf-8")
    return tok.apply_chat_template(messages, chat_template=chat_template, tokenize=False, **kwargs)


def ours(tok, name: str, messages, system: str = SYSTEM, **options) -> tuple[str, list[str]]:
    """tunelab's rendering of the whole conversation, and the text up to the end of each turn's prompt."""
    template = get_template(name, tok).with_options(**options)
    turns = template.encode_turns(tok, messages, system=system)
    ids: list[int] = []
    prompts = []
    for prompt, response in turns:
        ids += prompt
        prompts.append(tok.decode(ids))
        ids += response
    return tok.decode(ids), prompts


def with_system(messages, system: str = SYSTEM):
    return [{"role": "system", "content": system}] + list(messages) if system else list(messages)


def official_prompts(tok, fixture: str, messages, system: str = SYSTEM, **kwargs) -> list[str]:
    """The official generation prompt before each assistant turn."""
    conversation = with_system(messages, system)
    lead = 1 if system else 0
    return [
        official(tok, fixture, conversation[: lead + i], add_generation_prompt=True, **kwargs)
        for i, m in enumerate(messages)
        if m["role"] == "assistant"
    ]


# (template, fixture, bos, eos, system): the families whose official rendering we match exactly.
EXACT = [
    ("qwen", "qwen2_5.jinja", None, None, SYSTEM),
    ("qwen", "qwen2_5.jinja", None, None, ""),  # no system: both insert Qwen's default system prompt
    ("qwen3", "qwen3.jinja", None, None, SYSTEM),
    ("qwen3_nothink", "qwen3_instruct_2507.jinja", None, None, SYSTEM),
    ("qwen3_5", "qwen3_5.jinja", None, None, SYSTEM),
    ("llama3", "llama3.jinja", "<|begin_of_text|>", None, SYSTEM),
    ("gemma3", "gemma3.jinja", "<bos>", None, SYSTEM),
    ("gemma", "gemma.jinja", "<bos>", None, ""),  # Gemma 1/2's template refuses a system message
]


@pytest.mark.parametrize(("name", "fixture", "bos", "eos", "system"), EXACT)
def test_named_template_renders_like_the_official_one(tiny_model_dir, name, fixture, bos, eos, system):
    tok = family_tokenizer(tiny_model_dir, name, bos=bos, eos=eos)
    text, prompts = ours(tok, name, TWO_TURNS, system=system)
    assert text == official(tok, fixture, with_system(TWO_TURNS, system))
    expected = official_prompts(tok, fixture, TWO_TURNS, system)
    if isinstance(TEMPLATES[name], ReasoningTemplate):
        # an earlier turn is history in the whole conversation, rendered without its block, while the
        # generation prompt of that turn had one: only the last turn is both at once
        prompts, expected = prompts[-1:], expected[-1:]
    assert prompts == expected


@pytest.mark.parametrize(("name", "fixture"), [("qwen3", "qwen3.jinja"), ("qwen3_5", "qwen3_5.jinja")])
def test_qwen3_thinking_blocks_follow_the_official_template(tiny_model_dir, name, fixture):
    tok = family_tokenizer(tiny_model_dir, name)
    # Reasoning written inline in the record comes out in Qwen's <think> markup, on the final turn only.
    text, prompts = ours(tok, name, REASONED)
    assert text == official(tok, fixture, with_system(REASONED))
    assert "<think>\nThree and three.\n</think>\n\nSix, of course." in text
    assert prompts[-1] == official_prompts(tok, fixture, REASONED)[-1]
    # The reasoning of an earlier turn is dropped, as the official template drops it from history.
    history = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "<think>Greet.</think>Hello."},
    ]
    text, _ = ours(tok, name, history + REASONED)
    assert "Greet." not in text and text == official(tok, fixture, with_system(history + REASONED))
    # enable_thinking: false drops all reasoning; the empty block is in the prompt, as the official
    # generation prompt with enable_thinking=False has it.
    template = get_template(name, tok).with_options(enable_thinking=False)
    turns = template.encode_turns(tok, REASONED, system=SYSTEM)
    assert tok.decode(turns[-1][1]) == "Six, of course.<|im_end|>\n"
    off = official_prompts(tok, fixture, REASONED, enable_thinking=False)
    assert tok.decode([i for p, r in turns[:-1] for i in p + r] + turns[-1][0]) == off[-1]
    assert off[-1].endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")


def test_qwen3_learns_the_empty_think_block_and_qwen3_nothink_has_none(tiny_model_dir):
    tok = family_tokenizer(tiny_model_dir, "qwen3")
    think = get_template("qwen3", tok).encode_turns(tok, TWO_TURNS[:2])
    assert tok.decode(think[0][1]) == "<think>\n\n</think>\n\nFour.<|im_end|>\n"  # the response, learned
    plain = get_template("qwen3_nothink", tok).encode_turns(tok, TWO_TURNS[:2])
    assert tok.decode(plain[0][1]) == "Four.<|im_end|>\n"
    # Qwen3.5 opens the block in its generation prompt, so the opening tag is part of the prompt.
    q35 = get_template("qwen3_5", tok).encode_turns(tok, TWO_TURNS[:2])
    assert tok.decode(q35[0][0]).endswith("<|im_start|>assistant\n<think>\n")
    assert tok.decode(q35[0][1]) == "\n</think>\n\nFour.<|im_end|>\n"
    prompt = get_template("qwen3", tok).encode_prompt(tok, TWO_TURNS[:3])
    assert tok.decode(prompt).endswith(
        "<|im_start|>user\nAnd three plus three?<|im_end|>\n<|im_start|>assistant\n"
    )


def test_gemma2_learns_eos_after_the_last_turn(tiny_model_dir):
    # LLaMA-Factory's gemma2 also learns EOS after the final <end_of_turn> (efficient_eos): the official
    # rendering plus that one token.
    tok = family_tokenizer(tiny_model_dir, "gemma2", bos="<bos>", eos="<eos>")
    text, prompts = ours(tok, "gemma2", TWO_TURNS, system="")
    assert text == official(tok, "gemma.jinja", TWO_TURNS) + "<eos>"
    assert prompts == official_prompts(tok, "gemma.jinja", TWO_TURNS, "")


def test_phi_matches_phi3_5_up_to_its_final_eos(tiny_model_dir):
    # The official Phi-3.5 template ends a whole conversation with EOS (<|endoftext|>) after the last
    # <|end|>; like LLaMA-Factory's phi we stop at <|end|>, the token Phi generates to end a turn.
    tok = family_tokenizer(tiny_model_dir, "phi", eos="<|endoftext|>")
    text, prompts = ours(tok, "phi", TWO_TURNS)
    assert text + "<|endoftext|>" == official(tok, "phi3_5.jinja", with_system(TWO_TURNS))
    assert prompts == official_prompts(tok, "phi3_5.jinja", TWO_TURNS)


def test_llama3_1_differs_only_by_its_date_header(tiny_model_dir):
    # Llama 3.1+ templates write "Cutting Knowledge Date / Today Date" into the system turn, the date of
    # the day they render; a training format cannot depend on the calendar, so llama3 leaves it out.
    tok = family_tokenizer(tiny_model_dir, "llama3", bos="<|begin_of_text|>")
    text, _ = ours(tok, "llama3", TWO_TURNS)
    rendered = official(tok, "llama3_1.jinja", with_system(TWO_TURNS), date_string="26 Jul 2024")
    header = "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"
    assert rendered == text.replace(
        "<|end_header_id|>\n\nBe brief.", "<|end_header_id|>\n\n" + header + "Be brief."
    )


def test_deepseek3_matches_v3_but_does_not_open_a_think_block(tiny_model_dir):
    # This revision of DeepSeek-V3's template prefills "<think>\n" in its generation prompt, as R1's does.
    # deepseek3 (as in LLaMA-Factory) trains V3 as a plain chat model, so its prompts stop before it;
    # thinking data belongs to deepseekr1.
    bos, eos = "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"
    tok = family_tokenizer(tiny_model_dir, "deepseek3", bos=bos, eos=eos)
    text, prompts = ours(tok, "deepseek3", TWO_TURNS)
    assert text == official(tok, "deepseek3.jinja", with_system(TWO_TURNS))
    expected = official_prompts(tok, "deepseek3.jinja", TWO_TURNS)
    assert prompts == [p.removesuffix("<think>\n") for p in expected]


def test_deepseekr1_prompt_matches_and_keeps_the_reasoning_to_learn(tiny_model_dir):
    # The R1 template is an inference template: it removes the reasoning from *every* assistant turn
    # (training on it would teach R1 to stop thinking), so only the prompts are compared; the learned
    # response is what R1 generates after the "<think>\n" its generation prompt opens.
    bos, eos = "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"
    tok = family_tokenizer(tiny_model_dir, "deepseekr1", bos=bos, eos=eos)
    text, prompts = ours(tok, "deepseekr1", REASONED)
    assert prompts[-1] == official_prompts(tok, "deepseek_r1_distill.jinja", REASONED)[-1]
    assert prompts[-1].endswith("<｜Assistant｜><think>\n")
    assert text == prompts[-1] + "Three and three.\n</think>\n\nSix, of course." + eos


def test_glm4_moe_matches_glm4_5_up_to_the_final_eos(tiny_model_dir):
    # GLM-4.5 keeps an empty <think></think> in earlier turns and shows the reasoning of the last one;
    # like glm4 (efficient EOS), the last response also learns EOS, which the official text lacks.
    tok = family_tokenizer(tiny_model_dir, "glm4_moe", eos="<|endoftext|>")
    text, prompts = ours(tok, "glm4_moe", REASONED)
    assert text == official(tok, "glm4_moe.jinja", with_system(REASONED)) + "<|endoftext|>"
    assert "\n<think></think>\nFour." in text and "\n<think>Three and three.</think>\nSix" in text
    assert prompts[-1] == official_prompts(tok, "glm4_moe.jinja", REASONED)[-1]


def test_gpt_uses_the_harmony_channels(tiny_model_dir):
    # The official gpt-oss template opens with a generated system header (knowledge cutoff, today's
    # date, reasoning effort, channel list) and moves the system prompt to a developer message, so the
    # texts cannot match; the turns themselves must: same user turns, reasoning in the analysis channel,
    # the answer in the final channel.
    # The final answer ends with <|return|> there; here with <|end|> and then EOS (<|return|>), learned.
    tok = family_tokenizer(tiny_model_dir, "gpt", eos="<|return|>")
    text, _ = ours(tok, "gpt", REASONED)
    reasoning, answer = split_reasoning(REASONED[-1]["content"])
    conversation = with_system(REASONED[:-1]) + [
        {"role": "assistant", "content": answer, "thinking": reasoning}
    ]
    rendered = official(tok, "gpt_oss.jinja", conversation)
    turns = text.split("<|start|>user", 1)[1]  # everything after our system turn
    assert rendered.endswith("<|start|>user" + turns.removesuffix("<|end|><|return|>") + "<|return|>")
    assert "<|start|>assistant<|channel|>final<|message|>Four.<|end|>" in text


# Families whose official template is not available offline: the expected text is written from the
# format the model card publishes, as LLaMA-Factory encodes it (vicuna: LLaMA-Factory encodes the
# system and USER pieces separately, so a SentencePiece tokenizer puts the space in), so the test pins
# the format exactly.
HANDWRITTEN = {
    "mistral": "<s>[INST] Be brief.\n\nWhat is two plus two?[/INST] Four.</s>[INST] And three plus three?[/INST]"
    " Six, of course.</s>",
    "phi4": "<|im_start|>system<|im_sep|>Be brief.<|im_end|><|im_start|>user<|im_sep|>What is two plus two?<|im_end|>"
    "<|im_start|>assistant<|im_sep|>Four.<|im_end|><|im_start|>user<|im_sep|>And three plus three?<|im_end|>"
    "<|im_start|>assistant<|im_sep|>Six, of course.<|im_end|>",
    "llama4": "<|begin_of_text|><|header_start|>system<|header_end|>\n\nBe brief.<|eot|><|header_start|>user<|header_end|>"
    "\n\nWhat is two plus two?<|eot|><|header_start|>assistant<|header_end|>\n\nFour.<|eot|><|header_start|>user"
    "<|header_end|>\n\nAnd three plus three?<|eot|><|header_start|>assistant<|header_end|>\n\nSix, of course.<|eot|>",
    "glm4": "[gMASK]<sop><|system|>\nBe brief.<|user|>\nWhat is two plus two?<|assistant|>\nFour.<|user|>\nAnd three"
    " plus three?<|assistant|>\nSix, of course.</s>",
    "baichuan2": "Be brief.<reserved_106>What is two plus two?<reserved_107>Four.<reserved_106>And three plus three?"
    "<reserved_107>Six, of course.</s>",
    "yi": "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhat is two plus two?<|im_end|>\n<|im_start|>"
    "assistant\nFour.<|im_end|>\n<|im_start|>user\nAnd three plus three?<|im_end|>\n<|im_start|>assistant\n"
    "Six, of course.<|im_end|>\n",
    "deepseek": "<s>Be brief.\n\nUser: What is two plus two?\n\nAssistant:Four.</s>User: And three plus three?\n\n"
    "Assistant:Six, of course.</s>",
    "vicuna": "Be brief.USER: What is two plus two? ASSISTANT:Four.</s>USER: And three plus three? ASSISTANT:"
    "Six, of course.</s>",
}


@pytest.mark.parametrize("name", sorted(HANDWRITTEN))
def test_published_formats_without_an_offline_template(tiny_model_dir, name):
    tok = family_tokenizer(tiny_model_dir, name, bos="<s>", eos="</s>")
    text, _ = ours(tok, name, TWO_TURNS)
    assert text == HANDWRITTEN[name]


def test_intern2_adds_bos_and_internlm_system(tiny_model_dir):
    tok = family_tokenizer(tiny_model_dir, "intern2", bos="<s>")
    text, _ = ours(tok, "intern2", TWO_TURNS[:2], system="")
    assert text.startswith(
        "<s><|im_start|>system\nYou are an AI assistant whose name is InternLM (书生·浦语)."
    )


def test_split_reasoning_reads_inline_think_tags():
    assert split_reasoning("<think>\nA.\n</think>\n\nB.") == ("A.", "B.")
    assert split_reasoning("B.") == ("", "B.")
    assert split_reasoning("A.</think>B.") == ("A.", "B.")  # a template that prefilled <think>


CASES = [(n, True) for n in sorted(set(TEMPLATES) - {"tokenizer"})]
CASES += [(n, False) for n, t in sorted(TEMPLATES.items()) if isinstance(t, ReasoningTemplate)]


@pytest.mark.parametrize(("name", "enable_thinking"), CASES)
def test_every_template_splits_turns_exactly(tiny_model_dir, name, enable_thinking):
    # The per-turn split is exact for every format: the turns concatenate to the generation prompt of
    # the last turn plus its response, and no turn has an empty prompt or response.
    tok = family_tokenizer(tiny_model_dir, name, bos="<s>")
    template = get_template(name, tok).with_options(enable_thinking=enable_thinking)
    turns = template.encode_turns(tok, REASONED, system=SYSTEM)
    whole = [i for p, r in turns for i in p + r]
    assert whole == template.encode_prompt(tok, REASONED, system=SYSTEM) + turns[-1][1]
    assert all(p and r for p, r in turns)
