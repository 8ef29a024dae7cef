"""ChatEngine: batched = unbatched greedy, streaming = non-streaming, stops, limits, threads."""

from __future__ import annotations

import threading

import pytest

from tunelab.errors import ConfigError
from tunelab.infer.engine import ChatEngine, InputTooLongError

QUESTIONS = [
    "What is a learning rate?",
    "Hi",
    "Tell me about rank and alpha in LoRA adapters, and why alpha is often twice the rank.",
]


def ask(question: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": question}]


def test_batched_left_padded_equals_one_at_a_time(tiny_engine: ChatEngine) -> None:
    batched = tiny_engine.chat_batch([ask(q) for q in QUESTIONS], batch_size=3, max_new_tokens=12)
    single = [tiny_engine.chat(ask(q), max_new_tokens=12) for q in QUESTIONS]
    assert [r.text for r in batched] == [r.text for r in single]
    assert [r.completion_tokens for r in batched] == [r.completion_tokens for r in single]
    assert [r.prompt_tokens for r in batched] == [len(tiny_engine.encode_chat(ask(q))) for q in QUESTIONS]
    assert any(r.text for r in batched)


def test_stream_adds_up_to_the_reply(tiny_engine: ChatEngine) -> None:
    messages = [{"role": "system", "content": "Be brief."}, *ask(QUESTIONS[0])]
    whole = tiny_engine.chat(messages, max_new_tokens=16)
    stream = tiny_engine.stream(messages, max_new_tokens=16)
    pieces = list(stream)
    assert len(pieces) > 1  # it really arrives piece by piece
    assert "".join(pieces) == whole.text
    assert stream.reply == whole


def test_length_and_stop_strings(tiny_engine: ChatEngine) -> None:
    long = tiny_engine.chat(ask(QUESTIONS[0]), max_new_tokens=6)
    assert long.finish_reason == "length" and long.completion_tokens == 6
    words = tiny_engine.chat(ask(QUESTIONS[0]), max_new_tokens=20).text.split()
    stop = words[2]  # a word the greedy answer is known to contain
    cut = tiny_engine.chat(ask(QUESTIONS[0]), max_new_tokens=20, stop=[stop])
    assert stop not in cut.text and cut.finish_reason == "stop"
    stream = tiny_engine.stream(ask(QUESTIONS[0]), max_new_tokens=20, stop=[stop])
    assert "".join(stream) == cut.text


def test_completion_without_template(tiny_engine: ChatEngine) -> None:
    reply = tiny_engine.complete("the learning rate", max_new_tokens=5)
    assert reply.prompt_tokens == len(tiny_engine.tokenizer.encode("the learning rate"))
    assert "".join(tiny_engine.stream_complete("the learning rate", max_new_tokens=5)) == reply.text


def test_bad_settings_are_config_errors(tiny_engine: ChatEngine) -> None:
    with pytest.raises(ConfigError, match="top_p"):
        tiny_engine.chat(ask("Hi"), top_p=2.0)
    with pytest.raises(ConfigError, match="unknown generation setting"):
        tiny_engine.chat(ask("Hi"), max_tokens=5)
    with pytest.raises(ConfigError, match="beam"):
        tiny_engine.stream(ask("Hi"), num_beams=2)
    assert tiny_engine.settings(temperature=0).do_sample is False  # OpenAI's greedy spelling


def test_prompt_longer_than_context(tiny_engine: ChatEngine) -> None:
    small = ChatEngine(tiny_engine.model, tiny_engine.tokenizer, tiny_engine.template, max_context=24)
    with pytest.raises(InputTooLongError) as info:
        small.stream(ask("word " * 40))
    assert info.value.limit == 24 and info.value.n_tokens > 24
    fits = small.chat(ask("Hi"), max_new_tokens=50)  # shortened to what the context holds
    assert fits.prompt_tokens + fits.completion_tokens <= 24


def test_threads_do_not_mix_outputs(tiny_engine: ChatEngine) -> None:
    expected = {q: tiny_engine.chat(ask(q), max_new_tokens=10).text for q in QUESTIONS}
    got: dict[str, str] = {}

    def worker(q: str) -> None:
        got[q] = (
            "".join(tiny_engine.stream(ask(q), max_new_tokens=10))
            if q == "Hi"
            else (tiny_engine.chat(ask(q), max_new_tokens=10).text)
        )

    threads = [threading.Thread(target=worker, args=(q,)) for q in QUESTIONS]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == expected


def test_closing_a_stream_stops_generation(tiny_engine: ChatEngine) -> None:
    stream = tiny_engine.stream(ask(QUESTIONS[0]), max_new_tokens=200, do_sample=True, temperature=1.0)
    next(stream)
    stream.close()
    # the lock is free again: a new request is served
    assert tiny_engine.chat(ask("Hi"), max_new_tokens=3).completion_tokens <= 3


def test_next_token_logprobs_batched_equals_single(tiny_engine: ChatEngine) -> None:
    prompts = [tiny_engine.encode_chat(ask(q)) for q in QUESTIONS]
    ids = tiny_engine.tokenizer.convert_tokens_to_ids(["A", "B"])
    batched = tiny_engine.next_token_logprobs(prompts, ids, batch_size=3)
    single = [tiny_engine.next_token_logprobs([p], ids)[0] for p in prompts]
    flat = [v for row in batched for v in row]
    assert flat == pytest.approx([v for row in single for v in row], abs=1e-4)
    assert all(v < 0 for row in batched for v in row)


def test_completion_keeps_whitespace_at_its_ends(tiny_engine: ChatEngine) -> None:
    """A raw continuation is joined to its prompt: " blue" after "The sky is" keeps its space."""
    tok = tiny_engine.tokenizer
    ids = tok.encode(" blue sky \n", add_special_tokens=False)
    assert tok.decode(ids) == " blue sky \n"  # the tokenizer round-trips the spaces
    raw = tiny_engine.finish_reply(ids, 3, 20, None, strip=False)
    chat = tiny_engine.finish_reply(ids, 3, 20, None)
    assert raw.text == " blue sky \n" and chat.text == "blue sky"
    prompt = "the learning rate"
    reply = tiny_engine.complete(prompt, max_new_tokens=12)
    expected = tiny_engine.generate([tiny_engine.encode_text(prompt)], max_new_tokens=12, strip=False)[0]
    assert reply.text == expected.text
    assert "".join(tiny_engine.stream_complete(prompt, max_new_tokens=12)) == reply.text
