"""Records -> token ids for the preference stages: pairs (rm, dpo), tagged responses (kto), prompts (ppo).

The chat template encodes the prompt and each response exactly as it does for sft, so a preference
run sees the same tokens an sft run of the same data would:

- pairwise (rm, dpo): ``prompt_ids`` (the conversation up to and including the assistant header),
  ``chosen_ids`` and ``rejected_ids`` (each response with its end-of-turn tokens);
- unpaired (kto): ``prompt_ids``, ``completion_ids`` and ``label`` (True = desirable);
- prompts (ppo): ``input_ids`` ending with the assistant header, plus the record's ``messages``,
  ``system`` and ``tools`` so the reward model can render the conversation with its own template.

Cutoff follows the sft rule (see :mod:`tunelab.data.tokenize`): with a budget of ``cutoff_len`` tokens
for the prompt plus the longer response, a short side is kept whole and the other side gets the rest,
two long sides share the budget in proportion; a cut prompt keeps its end, a cut response its start.
A pair whose two responses are identical after the cut teaches nothing and is dropped.
No torch here: this module is imported by the data layer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tunelab.data.pipeline import DataStats, length_stats
from tunelab.data.template import Template, template_for
from tunelab.data.tokenize import TokenizeReport, split_turn_budget
from tunelab.errors import DataError

if TYPE_CHECKING:
    import datasets

    from tunelab.config import RunConfig

__all__ = [
    "PREFERENCE_STAGES",
    "PreferenceData",
    "build_preference_datasets",
    "encode_reply",
    "split_budget",
    "tokenize_pairwise",
    "tokenize_prompt",
    "tokenize_unpaired",
]

PREFERENCE_STAGES = ("rm", "dpo", "kto", "ppo")


def split_budget(n_prompt: int, n_response: int, budget: int) -> tuple[int, int]:
    """The sft cut (:func:`split_turn_budget`), but keeping at least one response token to score."""
    if n_prompt + n_response <= budget:
        return n_prompt, n_response
    keep_prompt = min(split_turn_budget(n_prompt, n_response, budget)[0], budget - 1)
    return keep_prompt, budget - keep_prompt


def encode_reply(
    messages: list[dict[str, str]],
    reply: str,
    tokenizer: Any,
    template: Template,
    system: str = "",
    tools: str = "",
) -> tuple[list[int], list[int]]:
    """(prompt ids up to the assistant header, reply ids with its end-of-turn tokens) of a conversation."""
    turns = template.encode_turns(
        tokenizer, [*messages, {"role": "assistant", "content": reply}], system, tools
    )
    return [i for p, r in turns[:-1] for i in p + r] + turns[-1][0], turns[-1][1]


def _encode_reply(
    record: dict[str, Any], reply: str, tokenizer: Any, template: Template
) -> tuple[list[int], list[int]]:
    """:func:`encode_reply` for a record, with errors naming the record."""
    try:
        return encode_reply(
            record["messages"],
            reply,
            tokenizer,
            template,
            record.get("system") or "",
            record.get("tools") or "",
        )
    except DataError as err:
        raise DataError(f"{record.get('source') or 'a record'}: {err.message}", err.hint) from err


def tokenize_pairwise(
    record: dict[str, Any], tokenizer: Any, template: Template, *, cutoff_len: int
) -> dict[str, Any]:
    """``prompt_ids``, ``chosen_ids``, ``rejected_ids`` (cut to ``cutoff_len``), ``n_full_tokens``, ``keep``."""
    prompt, chosen = _encode_reply(record, record["chosen"], tokenizer, template)
    _, rejected = _encode_reply(record, record["rejected"], tokenizer, template)
    n_full = len(prompt) + max(len(chosen), len(rejected))
    keep_prompt, keep_response = split_budget(len(prompt), max(len(chosen), len(rejected)), cutoff_len)
    prompt = prompt[len(prompt) - keep_prompt :]
    chosen, rejected = chosen[:keep_response], rejected[:keep_response]
    return {
        "prompt_ids": prompt,
        "chosen_ids": chosen,
        "rejected_ids": rejected,
        "n_full_tokens": n_full,
        "keep": bool(chosen) and bool(rejected) and chosen != rejected,
    }


def tokenize_unpaired(
    record: dict[str, Any], tokenizer: Any, template: Template, *, cutoff_len: int
) -> dict[str, Any]:
    """``prompt_ids``, ``completion_ids`` (the last assistant turn), ``label``, ``n_full_tokens``, ``keep``."""
    *history, last = record["messages"]
    prompt, completion = _encode_reply({**record, "messages": history}, last["content"], tokenizer, template)
    n_full = len(prompt) + len(completion)
    keep_prompt, keep_response = split_budget(len(prompt), len(completion), cutoff_len)
    completion = completion[:keep_response]
    return {
        "prompt_ids": prompt[len(prompt) - keep_prompt :],
        "completion_ids": completion,
        "label": bool(record["kto_tag"]),
        "n_full_tokens": n_full,
        "keep": bool(completion),
    }


def tokenize_prompt(
    record: dict[str, Any], tokenizer: Any, template: Template, *, max_prompt_len: int
) -> dict[str, Any]:
    """``input_ids`` to generate from (the end kept when longer than ``max_prompt_len``) and the conversation."""
    try:
        ids = template.encode_prompt(
            tokenizer, record["messages"], record.get("system") or "", record.get("tools") or ""
        )
    except DataError as err:
        raise DataError(f"{record.get('source') or 'a record'}: {err.message}", err.hint) from err
    return {
        "input_ids": ids[-max_prompt_len:],
        "messages": json.dumps(record["messages"], ensure_ascii=False),
        "system": record.get("system") or "",
        "tools": record.get("tools") or "",
        "n_full_tokens": len(ids),
        "keep": True,
    }


@dataclass
class PreferenceData:
    """Tokenized splits of a preference stage, the template used, and the data statistics."""

    train: datasets.Dataset
    eval: datasets.Dataset | None
    stats: DataStats
    template: Template


def build_preference_datasets(config: RunConfig, tokenizer: Any) -> PreferenceData:
    """Load the records of ``config``'s datasets for its (preference) stage and tokenize both splits."""
    from tunelab.data.loader import load_records

    stage, data = config.finetuning.stage, config.data
    if stage not in PREFERENCE_STAGES:
        raise DataError(
            f"stage {stage} is not a preference stage", f"preference stages: {', '.join(PREFERENCE_STAGES)}"
        )
    splits = load_records(data, stage, seed=config.training.seed)
    template = template_for(data, tokenizer)
    if stage == "ppo":
        budget = data.cutoff_len - config.generation.max_new_tokens
        if budget < 1:
            raise DataError(
                f"cutoff_len={data.cutoff_len} leaves no room for a prompt: ppo generates up to "
                f"max_new_tokens={config.generation.max_new_tokens} tokens within it",
                "raise cutoff_len or lower max_new_tokens",
            )
        encode, options = tokenize_prompt, {"max_prompt_len": budget}
    else:
        encode = tokenize_unpaired if stage == "kto" else tokenize_pairwise
        options = {"cutoff_len": data.cutoff_len}
    cutoff = options.get("max_prompt_len", data.cutoff_len)
    train, train_report = _tokenize(splits.train, encode, tokenizer, template, options, cutoff)
    eval_set, eval_report = None, TokenizeReport()
    if splits.eval is not None:
        eval_set, eval_report = _tokenize(splits.eval, encode, tokenizer, template, options, cutoff)
    low, mean, p95, high = length_stats(train_report.lengths)
    stats = DataStats(
        n_train=train_report.n_samples,
        n_eval=eval_report.n_samples,
        n_train_sequences=len(train),
        len_min=low,
        len_mean=mean,
        len_p95=p95,
        len_max=high,
        share_cut=train_report.n_cut / len(train_report.lengths) if train_report.lengths else 0.0,
        n_dropped=train_report.n_dropped + eval_report.n_dropped,
        cutoff_len=data.cutoff_len,
    )
    if len(train) == 0:
        raise DataError(
            f"no training sample of {', '.join(data.dataset or [])} is left after tokenization for stage {stage}",
            "check that chosen and rejected responses differ, and that cutoff_len leaves room for the responses",
        )
    return PreferenceData(train=train, eval=eval_set, stats=stats, template=template)


def _tokenize(
    records: datasets.Dataset,
    encode: Any,
    tokenizer: Any,
    template: Template,
    options: dict[str, Any],
    cutoff: int,
) -> tuple[datasets.Dataset, TokenizeReport]:
    """Encode every record (in memory: preference data is small next to the model work on it)."""
    from datasets import Dataset

    rows = [encode(record, tokenizer, template, **options) for record in records]
    kept = [
        {k: v for k, v in row.items() if k not in ("n_full_tokens", "keep")} for row in rows if row["keep"]
    ]
    lengths = [row["n_full_tokens"] for row in rows]
    report = TokenizeReport(
        n_records=len(rows),
        n_samples=len(kept),
        n_sequences=len(kept),
        n_dropped=len(rows) - len(kept),
        n_cut=sum(n > cutoff for n in lengths),
        lengths=lengths,
    )
    columns = list(kept[0]) if kept else []
    return Dataset.from_dict({c: [row[c] for row in kept] for c in columns}), report
