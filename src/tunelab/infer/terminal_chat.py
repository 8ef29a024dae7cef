"""`tunelab chat`: a multi-turn terminal conversation with streamed answers.

Commands typed as a message: `/clear` forgets the history, `/exit` (or end of input, Ctrl-D) quits.
Reads stdin line by line when it is not a terminal, so a script (or a test) can pipe a conversation
in; the prompt marker is shown only on a terminal. When the history no longer fits the model's
context, the oldest turns are dropped (and the user is told).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any

from tunelab.infer.engine import InputTooLongError

if TYPE_CHECKING:
    from tunelab.infer.engine import ChatEngine

__all__ = ["run_chat"]

_TEXT = {
    "en": {
        "banner": "chatting with {name} — /clear forgets the history, /exit quits",
        "cleared": "(history cleared)",
        "trimmed": "(dropped the oldest turn to fit the context)",
        "too_long": "(this message alone is longer than the model's context; /clear or write less)",
        "stopped": "(stopped)",
    },
    "zh": {
        "banner": "正在与 {name} 对话 — /clear 清空历史，/exit 退出",
        "cleared": "（已清空历史）",
        "trimmed": "（已丢弃最早的一轮对话以适应上下文长度）",
        "too_long": "（这条消息本身就超出了模型的上下文长度；请 /clear 或缩短输入）",
        "stopped": "（已停止）",
    },
}


def _lines(stream: IO[str], interactive: bool, prompt: str) -> Iterator[str]:
    while True:
        if interactive:
            try:
                line = input(prompt)
            except EOFError:
                return
        else:
            line = stream.readline()
            if not line:
                return
        yield line.rstrip("\n")


def run_chat(
    engine: ChatEngine,
    *,
    system: str | None = None,
    stdin: IO[str] | None = None,
    stdout: IO[str] | None = None,
    lang: str = "en",
    **gen: Any,
) -> list[dict[str, str]]:
    """Chat until /exit or end of input; return the final history (handy for tests and scripts)."""
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    text = _TEXT["zh" if lang == "zh" else "en"]
    engine.settings(**gen)  # a bad setting fails now, not after the first message
    interactive = stdin.isatty()
    history: list[dict[str, str]] = []
    print(text["banner"].format(name=engine.name), file=stdout, flush=True)
    for line in _lines(stdin, interactive, "User: "):
        message = line.strip()
        if not message:
            continue
        if message in ("/exit", "/quit"):
            break
        if message == "/clear":
            history = []
            print(text["cleared"], file=stdout, flush=True)
            continue
        history.append({"role": "user", "content": message})
        reply = _answer(engine, history, system, stdout, text, gen)
        if reply is None:
            history.pop()
            continue
        history.append({"role": "assistant", "content": reply})
    return history


def _answer(
    engine: ChatEngine,
    history: list[dict[str, str]],
    system: str | None,
    stdout: IO[str],
    text: dict[str, str],
    gen: dict[str, Any],
) -> str | None:
    """Stream the reply to `history` (trimming old turns to fit); None when even one message does not fit."""
    messages = _with_system(history, system)
    while True:
        try:
            stream = engine.stream(messages, **gen)
            break
        except InputTooLongError:
            if len(history) <= 1:
                print(text["too_long"], file=stdout, flush=True)
                return None
            del history[:2]  # the oldest user + assistant turn
            messages = _with_system(history, system)
            print(text["trimmed"], file=stdout, flush=True)
    print("Assistant: ", end="", file=stdout, flush=True)
    pieces: list[str] = []
    try:
        for piece in stream:
            pieces.append(piece)
            print(piece, end="", file=stdout, flush=True)
    except KeyboardInterrupt:  # Ctrl-C stops this answer, not the chat
        stream.close()
        print(" " + text["stopped"], end="", file=stdout)
    print(file=stdout, flush=True)
    return stream.reply.text if stream.reply is not None else "".join(pieces)


def _with_system(history: list[dict[str, str]], system: str | None) -> list[dict[str, str]]:
    return ([{"role": "system", "content": system}] if system else []) + history
