"""The Chat tab: load the top bar's model (+ adapters) into the UI process and talk to it, streamed.

Chat is the one feature that runs in the UI's own process: a reply must stream token by token into
the page, and a loaded model answers many turns. It uses the same ChatEngine as `tunelab chat` and
`tunelab api`, so the chat template and generation code are the CLI's.

Each browser session has its own engine, kept in a gr.State (gradio drops it when the tab closes):
one user's Load or Unload never touches another user's model, and a reply that is streaming keeps
the engine it started with even if its own session loads another model meanwhile. The price is one
copy of the weights per session that loaded a model.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from tunelab.errors import TunelabError
from tunelab.webui.context import UIContext, error_html, message_html
from tunelab.webui.i18n import tr

if TYPE_CHECKING:
    from tunelab.infer.engine import ChatEngine

__all__ = ["build", "clear_chat", "load_model", "stream_reply", "unload_model"]


def load_model(ctx: UIContext, lang: str, values: list[Any], engine: ChatEngine | None) -> tuple[str, Any]:
    """(status, this session's new engine): load the model (and adapters) the top bar names,
    replacing the model this session loaded before."""
    try:
        _, config = ctx.form_config(values)
    except TunelabError as exc:
        return error_html(exc, lang), engine
    import gc

    from tunelab.infer.engine import load_engine

    del engine  # free this session's old weights before loading new ones
    gc.collect()
    try:
        loaded = load_engine(config)
    except TunelabError as exc:
        return error_html(exc, lang), None
    adapters = ", ".join(config.model.adapter_name_or_path or []) or "-"
    status = tr(
        "chat.loaded",
        lang,
        model=config.model.model_name_or_path,
        adapters=adapters,
        template=loaded.template.name,
    )
    return message_html(status, "ok"), loaded


def unload_model(lang: str, engine: ChatEngine | None) -> tuple[str, None]:
    """(status, no engine): drop this session's model (its memory is freed)."""
    import gc

    had = engine is not None
    del engine
    gc.collect()
    return message_html(tr("chat.unloaded" if had else "chat.none_loaded", lang), "info"), None


def stream_reply(
    engine: ChatEngine | None,
    lang: str,
    message: str,
    history: list[dict[str, Any]] | None,
    system: str,
    temperature: float | None,
    top_p: float | None,
    max_new_tokens: int | None,
) -> Iterator[tuple[list[dict[str, Any]], str, str]]:
    """Yield (history, cleared input, status) as the reply grows, one piece at a time."""
    history = [dict(m) for m in history or []]
    text = (message or "").strip()
    if engine is None:
        yield history, message, message_html(tr("chat.load_first", lang), "warn")
        return
    if not text:
        yield history, "", ""
        return
    turns = [{"role": m["role"], "content": _text(m.get("content"))} for m in history]
    turns.append({"role": "user", "content": text})
    sampled = bool(temperature and temperature > 0)
    try:
        stream = engine.stream(
            turns,
            system=(system or "").strip() or None,
            temperature=temperature if sampled else 0,
            top_p=top_p if sampled else None,
            do_sample=sampled,
            max_new_tokens=int(max_new_tokens) if max_new_tokens else None,
        )
    except TunelabError as exc:
        yield history, message, error_html(exc, lang)
        return
    history.append({"role": "user", "content": text})
    history.append({"role": "assistant", "content": ""})
    for piece in stream:
        # a new message dict each time: every yielded state stays as it was when sent
        history[-1] = {"role": "assistant", "content": history[-1]["content"] + piece}
        yield list(history), "", ""
    reply = stream.reply
    status = (
        tr("chat.usage", lang, prompt=reply.prompt_tokens, completion=reply.completion_tokens)
        if reply
        else ""
    )
    yield history, "", message_html(status, "info") if status else ""


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # gradio may hand back content as a list of parts
        return "".join(str(p.get("text", "")) if isinstance(p, dict) else str(p) for p in content)
    return str(content or "")


def clear_chat() -> tuple[list[Any], str]:
    return [], ""


def build(ctx: UIContext) -> dict[str, Any]:
    """Build the Chat tab inside the current Blocks and wire its events."""
    import gradio as gr

    lang, t = ctx.default_lang, ctx.translator
    w: dict[str, Any] = {"engine": gr.State(None)}  # this browser session's ChatEngine
    with gr.Row():
        w["load"] = t.value(
            gr.Button(tr("btn.load_model", lang), variant="primary", elem_id="tl-chat-load"), "btn.load_model"
        )
        w["unload"] = t.value(
            gr.Button(tr("btn.unload_model", lang), elem_id="tl-chat-unload"), "btn.unload_model"
        )
    w["status"] = gr.HTML(message_html(tr("chat.none_loaded", lang), "info"), elem_id="tl-chat-status")
    with gr.Row():
        with gr.Column(scale=3):
            w["chatbot"] = t.label(
                gr.Chatbot(label=tr("lbl.chat", lang), elem_id="tl-chatbot", height=420), "lbl.chat"
            )
            w["input"] = t.label(
                gr.Textbox(label=tr("lbl.message", lang), lines=2, elem_id="tl-chat-input"), "lbl.message"
            )
            with gr.Row():
                w["send"] = t.value(
                    gr.Button(tr("btn.send", lang), variant="primary", elem_id="tl-chat-send"), "btn.send"
                )
                w["clear"] = t.value(gr.Button(tr("btn.clear", lang), elem_id="tl-chat-clear"), "btn.clear")
        with gr.Column(scale=1):
            w["system"] = ctx.widget("default_system", lines=3, elem_id="tl-chat-system")
            w["temperature"] = ctx.widget("temperature", elem_id="tl-chat-temperature", minimum=0)
            w["top_p"] = ctx.widget("top_p", elem_id="tl-chat-top-p")
            w["max_new_tokens"] = ctx.widget("max_new_tokens", elem_id="tl-chat-max-new-tokens")
    w["load"].click(
        lambda lang, engine, *v: load_model(ctx, lang, list(v), engine),
        [ctx.lang, w["engine"], *ctx.form_inputs],
        [w["status"], w["engine"]],
    )
    w["unload"].click(unload_model, [ctx.lang, w["engine"]], [w["status"], w["engine"]])
    ctx.lang.change(
        lambda lang, engine: (
            gr.update() if engine is not None else message_html(tr("chat.none_loaded", lang), "info")
        ),
        [ctx.lang, w["engine"]],
        w["status"],
    )  # the first status line follows the language until a model is loaded

    def send(engine, lang, message, history, system, temperature, top_p, max_new_tokens):  # noqa: ANN001, ANN202
        yield from stream_reply(engine, lang, message, history, system, temperature, top_p, max_new_tokens)

    chat_inputs = [
        w["engine"],
        ctx.lang,
        w["input"],
        w["chatbot"],
        w["system"],
        w["temperature"],
        w["top_p"],
        w["max_new_tokens"],
    ]
    chat_outputs = [w["chatbot"], w["input"], w["status"]]
    w["send"].click(send, chat_inputs, chat_outputs)
    w["input"].submit(send, chat_inputs, chat_outputs)
    w["clear"].click(clear_chat, None, [w["chatbot"], w["status"]])
    return w
