"""ChatEngine: one loaded model that answers chats and completions, batched or streamed.

The one generation path behind `tunelab eval` (predictions), `tunelab chat` and `tunelab api`:

    engine = load_engine(config)                       # base, base + adapter, exported model
    engine.chat([{"role": "user", "content": "Hi"}])   # Reply(text, prompt_tokens, completion_tokens, finish_reason)
    for piece in engine.stream(messages): print(piece, end="")
    engine.complete("Once upon a time", max_new_tokens=20)

Generation settings default to the config's `generation:` group and can be overridden per call with the
same key names. Calls are serialised by a lock, so one engine can be shared by threads: outputs never
mix. `tunelab api` does not queue on that lock: its scheduler (infer/scheduler.py) decodes all
concurrent requests as one batch on the same model.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from tunelab.config import GenerationArgs
from tunelab.errors import ConfigError, DataError
from tunelab.infer.streaming import CancelCriteria, PieceFilter, ReplyStream, TokenStreamer, first_stop
from tunelab.model import dtype_guard

if TYPE_CHECKING:
    from tunelab.config import RunConfig
    from tunelab.data.template import Template

__all__ = ["ChatEngine", "InputTooLongError", "Reply", "ReplyStream", "chat_engine", "load_engine"]

Messages = Sequence[dict[str, str]]


class InputTooLongError(DataError):
    """The prompt leaves no room to generate within the model's context (HTTP 413 in the API)."""

    def __init__(self, n_tokens: int, limit: int) -> None:
        super().__init__(
            f"the prompt has {n_tokens} tokens; the model's context holds {limit}",
            "shorten the conversation (e.g. /clear in chat) or the prompt",
        )
        self.n_tokens = n_tokens
        self.limit = limit


@dataclass(frozen=True)
class Reply:
    """One finished generation, with the token counts an OpenAI-style `usage` needs."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" (a stop token or stop string) or "length" (max_new_tokens reached)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class ChatEngine:
    """A model, its tokenizer and chat template, ready to generate. See the module docstring."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        template: Template,
        *,
        generation: GenerationArgs | None = None,
        name: str = "model",
        max_context: int | None = None,
    ) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.template = template
        self.generation = generation or GenerationArgs()
        self.name = name
        config = getattr(model, "config", None)
        self.max_context = max_context or getattr(config, "max_position_embeddings", None) or 2048
        self.stop_ids = template.stop_token_ids(tokenizer)
        if tokenizer.pad_token_id is not None:
            self.pad_id = tokenizer.pad_token_id
        else:
            self.pad_id = self.stop_ids[0] if self.stop_ids else 0
        self._lock = threading.Lock()

    # ---- settings and prompts -------------------------------------------------------------------

    def settings(self, **overrides: Any) -> GenerationArgs:
        """The engine's generation settings with `overrides` (None values ignored), validated.

        `temperature=0` means greedy decoding, as in the OpenAI API.
        """
        values = {k: v for k, v in overrides.items() if v is not None}
        unknown = sorted(set(values) - set(GenerationArgs.model_fields))
        if unknown:
            raise ConfigError(
                f"unknown generation setting(s): {', '.join(unknown)}",
                f"use: {', '.join(GenerationArgs.model_fields)}",
            )
        if values.get("temperature") == 0:
            values.pop("temperature")
            values["do_sample"] = False
        try:
            return GenerationArgs(**{**self.generation.model_dump(), **values})
        except ValidationError as exc:
            err = exc.errors()[0]
            key = ".".join(str(p) for p in err["loc"])
            raise ConfigError(
                f"generation setting {key}={values.get(key)!r}: {err['msg']}",
                "see `tunelab train --help-keys` (generation group) for each setting's range",
            ) from None

    def encode_chat(self, messages: Messages, *, system: str | None = None, tools: str = "") -> list[int]:
        """Prompt ids for `messages` (a leading system message or `system` overrides the default)."""
        return self.template.encode_prompt(self.tokenizer, list(messages), system or "", tools)

    def encode_text(self, prompt: str) -> list[int]:
        """Prompt ids for raw text (no chat template), with BOS when the tokenizer adds one."""
        return list(self.tokenizer.encode(prompt, add_special_tokens=True))

    # ---- chat -----------------------------------------------------------------------------------

    def chat(
        self, messages: Messages, *, system: str | None = None, stop: Sequence[str] | None = None, **gen: Any
    ) -> Reply:
        """The assistant's reply to `messages` (OpenAI-style role/content dicts)."""
        return self.generate([self.encode_chat(messages, system=system)], stop=stop, **gen)[0]

    def chat_batch(
        self,
        conversations: Sequence[Messages],
        *,
        system: str | None = None,
        stop: Sequence[str] | None = None,
        batch_size: int = 8,
        **gen: Any,
    ) -> list[Reply]:
        """Replies to many conversations, generated `batch_size` at a time with left padding."""
        prompts = [self.encode_chat(m, system=system) for m in conversations]
        return self.generate(prompts, stop=stop, batch_size=batch_size, **gen)

    def stream(
        self, messages: Messages, *, system: str | None = None, stop: Sequence[str] | None = None, **gen: Any
    ) -> ReplyStream:
        """The reply to `messages`, piece by piece as it is generated (see ReplyStream)."""
        return self.stream_ids(self.encode_chat(messages, system=system), stop=stop, **gen)

    # ---- plain completion -----------------------------------------------------------------------

    def complete(self, prompt: str, *, stop: Sequence[str] | None = None, **gen: Any) -> Reply:
        """The continuation of raw text `prompt` (no chat template)."""
        return self.generate([self.encode_text(prompt)], stop=stop, strip=False, **gen)[0]

    def complete_batch(
        self, prompts: Sequence[str], *, stop: Sequence[str] | None = None, batch_size: int = 8, **gen: Any
    ) -> list[Reply]:
        """Continuations of several raw-text prompts."""
        return self.generate(
            [self.encode_text(p) for p in prompts], stop=stop, batch_size=batch_size, strip=False, **gen
        )

    def stream_complete(self, prompt: str, *, stop: Sequence[str] | None = None, **gen: Any) -> ReplyStream:
        """The continuation of raw text `prompt`, piece by piece."""
        return self.stream_ids(self.encode_text(prompt), stop=stop, strip=False, **gen)

    # ---- core -----------------------------------------------------------------------------------

    def generate(
        self,
        prompts: Sequence[list[int]],
        *,
        stop: Sequence[str] | None = None,
        batch_size: int = 8,
        progress: Callable[[int], Any] | None = None,
        strip: bool = True,
        **gen: Any,
    ) -> list[Reply]:
        """Replies for prompt id lists; batches are left-padded so every row ends where generation starts.

        `progress(n)` is called after each batch with the number of prompts it finished. `strip` trims
        whitespace at both ends: right for chat replies, wrong for raw completions, whose leading space
        ("The sky is" -> " blue") is part of the text.
        """
        import torch

        settings = self.settings(**gen)
        replies: list[Reply] = []
        for start in range(0, len(prompts), batch_size):
            chunk = [list(p) for p in prompts[start : start + batch_size]]
            max_new = self.room(chunk, settings.max_new_tokens)
            input_ids, attention = self._left_pad(chunk)
            with self._lock, dtype_guard.running(), torch.inference_mode():
                output = self.model.generate(
                    input_ids=input_ids,
                    attention_mask=attention,
                    **self._generate_kwargs(settings, max_new, stop),
                )
            width = input_ids.shape[1]
            for prompt, row in zip(chunk, output[:, width:].tolist()):
                replies.append(self.finish_reply(row, len(prompt), max_new, stop, strip=strip))
            if progress is not None:
                progress(len(chunk))
        return replies

    def stream_ids(
        self, prompt: list[int], *, stop: Sequence[str] | None = None, strip: bool = True, **gen: Any
    ) -> ReplyStream:
        """Stream the reply to prompt ids; generation runs in a worker thread holding the engine lock."""
        settings = self.settings(**gen)
        if settings.num_beams > 1:
            raise ConfigError("streaming does not work with beam search", "set num_beams=1 to stream")
        max_new = self.room([prompt], settings.max_new_tokens)
        cancel = threading.Event()
        finish: dict[str, Any] = {}
        pieces = self._stream_pieces(prompt, settings, max_new, list(stop or []), cancel, finish, strip)
        return ReplyStream(pieces, cancel, finish)

    def _stream_pieces(
        self,
        prompt: list[int],
        settings: GenerationArgs,
        max_new: int,
        stop: list[str],
        cancel: threading.Event,
        finish: dict[str, Any],
        strip: bool,
    ) -> Iterator[str]:
        import torch

        streamer = TokenStreamer(self.tokenizer)
        input_ids, attention = self._left_pad([prompt])
        kwargs = self._generate_kwargs(settings, max_new, stop, cancel=cancel)

        def work() -> None:
            try:
                with self._lock, dtype_guard.running(), torch.inference_mode():
                    self.model.generate(
                        input_ids=input_ids, attention_mask=attention, streamer=streamer, **kwargs
                    )
            except BaseException as exc:  # noqa: BLE001 - handed to the reading thread, which re-raises it
                streamer.fail(exc)

        worker = threading.Thread(target=work, name="tunelab-generate", daemon=True)
        worker.start()
        released = PieceFilter(stop, strip=strip)
        try:
            for piece in streamer:
                out = released.feed(piece)
                if released.stopped:
                    cancel.set()
                    break
                if out:
                    yield out
            tail = released.tail()
            if tail:
                yield tail
        finally:
            cancel.set()
            # a stream dropped without being closed is finalised by whichever thread collects it,
            # possibly the worker itself, which cannot join itself (it ends on its own once cancelled)
            if threading.current_thread() is not worker:
                worker.join()
        streamer.raise_failure()
        finish["reply"] = self.finish_reply(streamer.ids, len(prompt), max_new, stop, strip=strip)

    def next_token_logprobs(
        self,
        prompts: Sequence[list[int]],
        token_ids: Sequence[int],
        *,
        batch_size: int = 8,
        progress: Callable[[int], Any] | None = None,
    ) -> list[list[float]]:
        """Log-probabilities of `token_ids` as the next token after each prompt (one forward pass each).

        The basis of multiple-choice scoring: which of the answer letters would the model say next.
        """
        import torch

        wanted = torch.tensor(list(token_ids))
        rows: list[list[float]] = []
        for start in range(0, len(prompts), batch_size):
            chunk = [list(p) for p in prompts[start : start + batch_size]]
            self.room(chunk, 1)
            input_ids, attention = self._left_pad(chunk)
            # left padding shifts positions; count them from each row's first real token instead
            positions = (attention.cumsum(-1) - 1).clamp(min=0)
            with self._lock, dtype_guard.running(), torch.inference_mode():
                out = self.model(
                    input_ids=input_ids, attention_mask=attention, position_ids=positions, logits_to_keep=1
                )
            logprobs = torch.log_softmax(out.logits[:, -1, :].float(), dim=-1).cpu()
            rows.extend(logprobs[:, wanted].tolist())
            if progress is not None:
                progress(len(chunk))
        return rows

    def room(self, prompts: list[list[int]], max_new_tokens: int) -> int:
        """max_new_tokens, shortened so that prompt + answer fit the model's context."""
        longest = max(len(p) for p in prompts)
        if longest >= self.max_context:
            raise InputTooLongError(longest, self.max_context)
        return min(max_new_tokens, self.max_context - longest)

    def _left_pad(self, prompts: list[list[int]]) -> tuple[Any, Any]:
        import torch

        width = max(len(p) for p in prompts)
        ids = [[self.pad_id] * (width - len(p)) + p for p in prompts]
        mask = [[0] * (width - len(p)) + [1] * len(p) for p in prompts]
        device = next(self.model.parameters()).device
        return torch.tensor(ids, device=device), torch.tensor(mask, device=device)

    def _generate_kwargs(
        self,
        settings: GenerationArgs,
        max_new: int,
        stop: Sequence[str] | None,
        *,
        cancel: threading.Event | None = None,
    ) -> dict[str, Any]:
        from transformers import StoppingCriteriaList

        sample = settings.do_sample
        kwargs: dict[str, Any] = {
            "max_new_tokens": max_new,
            "do_sample": sample,
            # unset sampling knobs under greedy decoding, or transformers warns that they are unused
            "temperature": settings.temperature if sample else None,
            "top_p": settings.top_p if sample else None,
            "top_k": settings.top_k if sample else None,
            "num_beams": settings.num_beams,
            "repetition_penalty": settings.repetition_penalty,
            "eos_token_id": self.stop_ids or None,
            "pad_token_id": self.pad_id,
        }
        if stop:
            kwargs["stop_strings"] = list(stop)
            kwargs["tokenizer"] = self.tokenizer
        if cancel is not None:
            kwargs["stopping_criteria"] = StoppingCriteriaList([CancelCriteria(cancel)])
        return kwargs

    def finish_reply(
        self, ids: list[int], n_prompt: int, max_new: int, stop: Sequence[str] | None, *, strip: bool = True
    ) -> Reply:
        """Decode generated ids up to the first stop token (or stop string); count what was generated."""
        cut = next((i for i, tok in enumerate(ids) if tok in self.stop_ids), None)
        if cut is not None:
            used, reason = ids[: cut + 1], "stop"
            text_ids = ids[:cut]
        else:
            # rows of a batch that finished early are padded with pad_id after their stop token
            used = _strip_padding(ids, self.pad_id) if self.pad_id not in self.stop_ids else ids
            text_ids, reason = used, ("length" if len(used) >= max_new else "stop")
        # a reply cut by max_new_tokens can end inside a multi-byte character: drop the broken half
        text = self.tokenizer.decode(text_ids, skip_special_tokens=True).rstrip("\ufffd")
        at = first_stop(text, list(stop or []))
        if at is not None:
            text, reason = text[:at], "stop"
        return Reply(text.strip() if strip else text, n_prompt, len(used), reason)


def _strip_padding(ids: list[int], pad_id: int) -> list[int]:
    end = len(ids)
    while end and ids[end - 1] == pad_id:
        end -= 1
    return ids[:end]


def load_engine(config: RunConfig, *, name: str | None = None) -> ChatEngine:
    """Load the model `config` describes (base, + adapters, or an exported dir) into a ChatEngine.

    LoRA adapters are merged into the weights (unless the model is quantized): same answers, and
    generation does not pay for the extra adapter matmuls.
    """
    from tunelab.data.template import template_for
    from tunelab.model import load_adapters, load_model, load_tokenizer
    from tunelab.model.precision import resolve_compute_dtype

    stage = config.finetuning.stage
    if stage in ("cls", "rm"):
        what = "a classifier" if stage == "cls" else "a reward model"
        raise ConfigError(
            f"this is a stage {stage} model ({what}): it scores text, it does not generate any",
            "evaluate cls runs with `tunelab eval RUN`; score replies with tunelab.evaluate.reward (rm); "
            "chat with a generative model (stage sft/pt/dpo/kto/ppo or a base model)",
        )
    tokenizer = load_tokenizer(config.model, padding_side="left")
    model = load_model(
        config.model,
        compute_dtype=resolve_compute_dtype(config.compute_type),
        model_max_length=config.data.cutoff_len,
    )
    adapters = config.model.adapter_name_or_path or []
    if adapters:
        model = load_adapters(model, adapters, is_trainable=False)
        if config.model.quantization_bit is None:
            model = model.merge_and_unload()
    model.requires_grad_(False)
    template = template_for(config.data, tokenizer)
    label = name or (adapters[-1] if adapters else config.model.model_name_or_path)
    return ChatEngine(model, tokenizer, template, generation=config.generation, name=str(label))


def chat_engine(
    config: str | Path | RunConfig | None = None,
    overrides: Sequence[str] = (),
    *,
    model: str | None = None,
    adapter: str | Sequence[str] | None = None,
    run: str | Path | None = None,
    template: str | None = None,
) -> ChatEngine:
    """A ChatEngine for a config file, a run directory, or `model=` [+ `adapter=`] (the Python API).

    from tunelab import chat_engine
    engine = chat_engine(run="runs/sft-lora-tiny")
    print(engine.chat([{"role": "user", "content": "Who are you?"}]).text)
    """
    from tunelab.infer.source import resolve_config

    resolved = resolve_config(config, overrides, model=model, adapter=adapter, run=run, template=template)
    return load_engine(resolved, name=str(run) if run is not None else None)
