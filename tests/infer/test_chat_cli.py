"""`tunelab chat` driven like a user would: piped input, streamed answers, /clear and /exit."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

from tunelab.infer.terminal_chat import run_chat


def test_chat_through_the_cli_with_piped_input(tiny_model_dir: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "tunelab",
        "chat",
        "--model",
        str(tiny_model_dir),
        "--template",
        "chatml",
    ]
    command += ["--system", "You are Tuna.", "compute_type=fp32", "max_new_tokens=8"]
    env = {**os.environ, "TUNELAB_LANG": "en"}
    proc = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stdin is not None and proc.stdout is not None
        assert proc.stdout.readline().startswith("chatting with")
        proc.stdin.write("Hello\n")
        proc.stdin.flush()
        # the answer arrives while the input is still open: the chat is interactive, not batch
        first = proc.stdout.readline()
        assert first.startswith("Assistant: ") and proc.poll() is None
        out, err = proc.communicate(
            "What is LoRA?\n/clear\nHi\n/exit\nThis line is never read\n", timeout=600
        )
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("Assistant: ") and lines[1] == "(history cleared)"
    assert lines[2].startswith("Assistant: ") and len(lines) == 3  # nothing after /exit
    assert "Traceback" not in err


class Piped(io.StringIO):
    def isatty(self) -> bool:
        return False


def test_history_and_clear(tiny_engine) -> None:
    out = io.StringIO()
    history = run_chat(tiny_engine, stdin=Piped("Hi\nHow are you?\n"), stdout=out, max_new_tokens=6)
    assert [m["role"] for m in history] == ["user", "assistant", "user", "assistant"]
    # the second answer was generated from the whole conversation, as the engine answers it directly
    assert history[3]["content"] == tiny_engine.chat(history[:3], max_new_tokens=6).text
    assert out.getvalue().count("Assistant: ") == 2
    history = run_chat(
        tiny_engine, stdin=Piped("Hi\n/clear\nHow are you?\n"), stdout=io.StringIO(), max_new_tokens=6
    )
    assert [m["content"] for m in history if m["role"] == "user"] == ["How are you?"]


def test_old_turns_are_dropped_when_the_context_is_full(tiny_engine) -> None:
    from tunelab.infer.engine import ChatEngine

    small = ChatEngine(tiny_engine.model, tiny_engine.tokenizer, tiny_engine.template, max_context=64)
    out = io.StringIO()
    said = "\n".join(f"message number {i} with some extra words in it" for i in range(6)) + "\n"
    history = run_chat(small, stdin=Piped(said), stdout=out, max_new_tokens=8)
    assert "dropped the oldest turn" in out.getvalue()
    assert history[-2]["content"] == "message number 5 with some extra words in it"
    assert len(small.encode_chat(history[:-1])) < 64
