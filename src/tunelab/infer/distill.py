"""Sequence-level distillation (Kim & Rush 2016): the teacher answers a dataset's prompts, the answers become sft data.

`tunelab data distill-responses CFG -o FILE` reads the prompts of CFG's datasets (every turn before each
record's last response), lets the teacher (``teacher_model_name_or_path``, batched through the
ChatEngine; or any OpenAI-compatible server with ``--api-base``) answer them, and writes FILE in
alpaca layout (sharegpt when a record has several turns), registered in a dataset_info.json beside it
with its provenance. An ordinary sft (or kd) run trains on it with ``dataset: <FILE's stem>`` and
``dataset_dir: <FILE's folder>``. Unlike logit distillation this works across tokenizers.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunelab.errors import ConfigError, ModelError
from tunelab.runs.rundir import atomic_write_text

if TYPE_CHECKING:
    from tunelab.config import RunConfig

__all__ = ["distill_responses", "prompts_of"]

Conversation = list[dict[str, str]]


def prompts_of(config: RunConfig) -> list[tuple[str, Conversation]]:
    """(system, turns up to the last user message) of every record of ``config``'s datasets, in file order."""
    from tunelab.data.loader import load_dataset_records

    data = config.data
    prompts = []
    for name in data.dataset or []:
        records = load_dataset_records(
            name,
            dataset_dir=data.dataset_dir,
            stage="sft",
            max_samples=data.max_samples,
            seed=config.training.seed,
        )
        for record in records:
            messages = list(record["messages"])
            if messages and messages[-1]["role"] == "assistant":
                messages = messages[:-1]
            prompts.append((record["system"] or data.default_system or "", messages))
    if not prompts:
        raise ConfigError("the config's datasets hold no prompts", "set dataset: <name or file path>")
    return prompts


def distill_responses(
    config: RunConfig,
    out_file: str | Path,
    *,
    api_base: str | None = None,
    api_model: str | None = None,
    api_key: str | None = None,
    batch_size: int = 8,
    progress: Callable[[int], Any] | None = None,
) -> Path:
    """Write the teacher's answers to ``config``'s prompts to ``out_file`` and register it; returns the file."""
    out = Path(out_file)
    if out.suffix != ".json":
        raise ConfigError(
            f"-o {out}: the output must be a .json file", f"use e.g. -o {out.with_suffix('.json')}"
        )
    prompts = prompts_of(config)
    gen = config.generation
    if api_base:
        teacher = api_model or config.kd.teacher_model_name_or_path or "default"
        replies = _ask_server(api_base, teacher, api_key, prompts, config, progress)
    else:
        from tunelab.infer.teacher import load_teacher, teacher_name

        if not config.kd.teacher_model_name_or_path:
            raise ConfigError(
                "distill-responses needs a teacher: set teacher_model_name_or_path", "or pass --api-base URL"
            )
        engine = load_teacher(config)
        teacher = teacher_name(config)
        ids = [engine.encode_chat(turns, system=system) for system, turns in prompts]
        # the config's generation settings (not the teacher run's own) decide how the answers are sampled
        settings = gen.model_dump()
        replies = [r.text for r in engine.generate(ids, batch_size=batch_size, progress=progress, **settings)]
    rows, formatting = _rows(prompts, replies)
    out.parent.mkdir(parents=True, exist_ok=True)
    _write_json(out, rows)
    provenance = {
        "teacher": teacher,
        "api_base": api_base,
        "datasets": config.data.dataset,
        "n_records": len(rows),
        "max_new_tokens": gen.max_new_tokens,
        "do_sample": gen.do_sample,
        "temperature": gen.temperature,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": "tunelab data distill-responses",
    }
    _register(out, formatting, provenance)
    return out


def _ask_server(
    api_base: str,
    model: str,
    api_key: str | None,
    prompts: Sequence[tuple[str, Conversation]],
    config: RunConfig,
    progress: Callable[[int], Any] | None,
) -> list[str]:
    """Replies from an OpenAI-compatible chat completions endpoint, one request per prompt."""
    import openai

    client = openai.OpenAI(base_url=api_base, api_key=api_key or "none")
    gen = config.generation
    replies = []
    for system, turns in prompts:
        messages = ([{"role": "system", "content": system}] if system else []) + list(turns)
        try:
            answer = client.chat.completions.create(
                model=model,
                messages=messages,  # type: ignore[arg-type]
                max_tokens=gen.max_new_tokens,
                temperature=gen.temperature if gen.do_sample else 0.0,
            )
        except openai.OpenAIError as err:
            raise ModelError(
                f"the teacher at {api_base} did not answer: {err}",
                "check --api-base (it ends in /v1) and that the server is running",
            ) from err
        replies.append((answer.choices[0].message.content or "").strip())
        if progress is not None:
            progress(1)
    return replies


def _rows(
    prompts: Sequence[tuple[str, Conversation]], replies: Sequence[str]
) -> tuple[list[dict[str, Any]], str]:
    """The records in alpaca layout when every prompt is one user turn, else in sharegpt layout."""
    if all(len(turns) == 1 and turns[0]["role"] == "user" for _, turns in prompts):
        rows = [
            {"instruction": turns[0]["content"], "input": "", "output": reply, "system": system}
            for (system, turns), reply in zip(prompts, replies)
        ]
        return rows, "alpaca"
    tag = {"user": "human", "assistant": "gpt", "function": "function_call", "observation": "observation"}
    rows = [
        {
            "conversations": [{"from": tag[m["role"]], "value": m["content"]} for m in turns]
            + [{"from": "gpt", "value": reply}],
            "system": system,
        }
        for (system, turns), reply in zip(prompts, replies)
    ]
    return rows, "sharegpt"


def _register(out: Path, formatting: str, provenance: dict[str, Any]) -> None:
    """Add (or replace) ``out``'s entry in the dataset_info.json of its folder."""
    registry = out.parent / "dataset_info.json"
    entries = json.loads(registry.read_text(encoding="utf-8")) if registry.is_file() else {}
    columns = (
        {"prompt": "instruction", "query": "input", "response": "output", "system": "system"}
        if formatting == "alpaca"
        else {"messages": "conversations", "system": "system"}
    )
    entries[out.stem] = {
        "file_name": out.name,
        "formatting": formatting,
        "columns": columns,
        "provenance": provenance,
    }
    _write_json(registry, entries)


def _write_json(path: Path, payload: Any) -> None:
    atomic_write_text(path, json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
