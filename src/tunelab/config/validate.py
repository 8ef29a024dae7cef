"""``validate``: every problem of a config in one pass, each once, with its file line and the fix.

Runs where a config is built (``load_config``), so ``--print-config``, ``tunelab check`` and every
command refuse a bad config before anything heavy loads. It collects, in this order:
LLaMA-Factory spellings that cannot be mapped (v1 parts), unknown keys (with "what this key is in
LLaMA-Factory / transformers", multimodal keys, or a near-miss), invalid values group by group,
then the cross-group rules of ``RunConfig``'s validators and of :mod:`tunelab.config.rules`.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from tunelab.config.control import NESTED_GROUP_TYPES
from tunelab.config.foreign_keys import HF_UNSUPPORTED, LF_UNSUPPORTED, MULTIMODAL
from tunelab.config.lf_compat import is_multimodal_template, translate
from tunelab.config.rules import ConfigProblems, Problem, command_problems, config_problems
from tunelab.config.run_config import KEY_TO_GROUP, RunConfig, nested_keys
from tunelab.config.schema import GROUP_TYPES
from tunelab.errors import ConfigError

__all__ = ["Report", "check_config", "require_for", "suggest_key", "validate"]

# word pairs that mean the opposite: never suggest one for the other
_OPPOSITES = [
    {"disable", "enable"}, {"use", "no"}, {"do", "no"}, {"enable", "no"}, {"train", "eval"},
    {"min", "max"}, {"true", "false"}, {"freeze", "train"}, {"disable", "use"},
]  # fmt: skip
_NEGATIONS = {"no", "not", "non", "without", "skip", "dont"}  # adding or dropping one flips the meaning
_TEXT_ONLY = "tunelab trains text-only models"


class Report:
    """The outcome of checking one config: the config (when valid) and every problem with its place."""

    def __init__(self, source: str, lines: dict[str, int], cli_keys: Collection[str]) -> None:
        self.source, self.lines, self.cli_keys = source, lines, set(cli_keys)
        self.origin: dict[str, str] = {}
        self.rows: list[tuple[str, str, str]] = []  # (where, message, hint)
        self.problems: list[tuple[str, Problem]] = []  # the same rows with their Problem (code, params)
        self.config: RunConfig | None = None

    def where(self, key: str | None) -> str:
        """'command line', '<file> line N' or '<file>' for the user's key behind ``key``."""
        key = self.origin.get(key, key) if key else key
        top = key.partition(".")[0] if key else None
        if top in self.cli_keys:
            return "command line"
        line = self.lines.get(top) if top else None
        return f"{self.source} line {line}" if line else self.source

    def add(self, problem: Problem) -> None:
        row = (self.where(problem.key), problem.message, problem.hint)
        if row not in self.rows:
            self.rows.append(row)
            self.problems.append((row[0], problem))
            # file order first (by line), then keys without a line, then the command line
            self.rows.sort(key=self._order)
            self.problems.sort(key=lambda item: self._order((item[0], "", "")))

    def _order(self, row: tuple[str, str, str]) -> tuple[int, int]:
        where = row[0]
        if where == "command line":
            return 2, 0
        line = where.rpartition(" line ")[2]
        return (0, int(line)) if line.isdigit() else (1, 0)

    @property
    def ok(self) -> bool:
        return not self.rows and self.config is not None

    def describe(self) -> str:
        """One line per problem: ``<where>: <message>  (fix: <hint>)``."""
        return "\n".join(f"  {w}: {m}" + (f"\n      fix: {h}" if h else "") for w, m, h in self.rows)

    def error(self) -> ConfigError:
        n = len(self.rows)
        hints = {h for _, _, h in self.rows if h}
        hint = hints.pop() if len(hints) == 1 else "fix each line above; `tunelab check CFG` lists them again"
        rows = [(w, ConfigError(p.message, p.hint, code=p.code, params=p.params)) for w, p in self.problems]
        return ConfigError(
            f"{n} problem{'s' if n != 1 else ''} in {self.source}:\n{self.describe()}",
            hint,
            code="config_problems",
            params={"n": n, "source": self.source},
            problems=rows,
        )


def suggest_key(key: str, candidates: Collection[str] | None = None) -> str | None:
    """A close spelling of one of our keys, never one that means the opposite (disable_ -> enable_)."""
    if candidates is None:
        candidates = nested_keys() if "." in key else list(KEY_TO_GROUP)
    words = set(key.lower().replace(".", "_").split("_"))
    for close in difflib.get_close_matches(key, list(candidates), n=3, cutoff=0.75):
        other = set(close.lower().replace(".", "_").split("_"))
        swapped = (words - other) | (other - words)
        if not swapped & _NEGATIONS and not any(pair <= swapped for pair in _OPPOSITES):
            return close
    return None


def unknown_key_problem(key: str) -> Problem:
    """The message for a key tunelab lacks: its LLaMA-Factory/transformers meaning, or a near-miss."""
    if key in MULTIMODAL:
        return Problem(
            key,
            f"'{key}' is a LLaMA-Factory option for {MULTIMODAL[key]} of multimodal models; {_TEXT_ONLY}",
            "remove it (and any image/video/audio columns); use LLaMA-Factory for multimodal training",
            code="multimodal_key",
            params={"key": key},
        )
    for table, owner in (
        (LF_UNSUPPORTED, "LLaMA-Factory"),
        (HF_UNSUPPORTED, "transformers TrainingArguments"),
    ):
        if key in table:
            meaning, alternative = table[key]
            return Problem(
                key,
                f"'{key}' is a {owner} option for {meaning}; tunelab does not support it (yet); "
                f"alternatives: {alternative}",
                "remove the key or use the alternative",
                code="unsupported_key",
                params={"key": key, "owner": owner, "meaning": meaning, "alternative": alternative},
            )
    close = suggest_key(key)
    hint = f"did you mean '{close}'?" if close else "`tunelab train --help-keys` lists every key"
    return Problem(key, f"unknown key '{key}'", hint, code="unknown_key", params={"key": key, "close": close})


def check_config(
    values: dict[str, Any],
    *,
    source: str = "config",
    lines: dict[str, int] | None = None,
    cli_keys: Collection[str] = (),
    base_dir: Path | None = None,
    command: str | None = None,
) -> Report:
    """Check flat (or v1-layout) keys and return every problem at once; ``report.config`` when valid.

    ``command`` ('train', 'eval') adds what that command needs on top (see ``rules.command_problems``).
    """
    report = Report(source, lines or {}, cli_keys)
    translated = translate(values, base_dir=base_dir)
    report.origin = translated.origin
    for key, message, hint in translated.problems:
        report.add(Problem(key, message, hint))
    flat = translated.values
    if is_multimodal_template(flat.get("template")):
        report.add(Problem("template", f"template: {flat.pop('template')} renders images, video or audio; "
                           f"{_TEXT_ONLY}", "use the text template of the model family (e.g. qwen3 for qwen3_vl)"))  # fmt: skip
    for key in [k for k in flat if k not in KEY_TO_GROUP]:
        report.add(unknown_key_problem(key))
        flat.pop(key)
    if flat.get("model_name_or_path") in (None, ""):
        report.add(Problem(None, "model_name_or_path is required",
                           "set it to a local model directory, a .gguf file, 'smollm2' or 'tiny:llama'",
                           code="model_required"))  # fmt: skip
    grouped: dict[str, dict[str, Any]] = {g: {} for g in GROUP_TYPES}
    for key, value in flat.items():
        if key not in NESTED_GROUP_TYPES:
            grouped[KEY_TO_GROUP[key]][key] = value
    for group, model in GROUP_TYPES.items():
        _collect(report, lambda m=model, g=group: m.model_validate(grouped[g]), flat)
    for group, model in NESTED_GROUP_TYPES.items():
        if flat.get(group) is not None:
            _collect(report, lambda m=model, g=group: m.model_validate(flat[g]), flat, nested=group)
    if report.rows:
        return report
    try:
        config = RunConfig.from_flat(flat)
    except ValidationError as exc:
        _add_errors(report, exc, flat)
        return report
    for problem in config_problems(config) + (command_problems(config, command) if command else []):
        report.add(problem)
    report.config = config
    return report


def require_for(config: RunConfig, command: str, *, source: str = "config") -> None:
    """Raise one ConfigError when ``config`` lacks what ``command`` needs (before any loading)."""
    report = Report(source, {}, ())
    for problem in command_problems(config, command):
        report.add(problem)
    if report.rows:
        raise report.error()


def validate(
    values: dict[str, Any],
    *,
    source: str = "config",
    lines: dict[str, int] | None = None,
    cli_keys: Collection[str] = (),
    base_dir: Path | None = None,
) -> RunConfig:
    """A valid RunConfig from flat keys, or one ConfigError listing every problem with its place."""
    report = check_config(values, source=source, lines=lines, cli_keys=cli_keys, base_dir=base_dir)
    if not report.ok:
        raise report.error()
    assert report.config is not None
    return report.config


def _collect(report: Report, build: Any, values: dict[str, Any], *, nested: str | None = None) -> None:
    try:
        build()
    except ValidationError as exc:
        _add_errors(report, exc, values, nested=nested)


def _add_errors(
    report: Report, exc: ValidationError, values: dict[str, Any], *, nested: str | None = None
) -> None:
    for err in exc.errors():
        loc, group = [str(p) for p in err["loc"]], nested
        if group is None and loc and loc[0] in NESTED_GROUP_TYPES:
            group, loc = loc[0], loc[1:]
        cause = (err.get("ctx") or {}).get("error")
        messages = (
            cause.problems
            if isinstance(cause, ConfigProblems)
            else [err["msg"].removeprefix("Value error, ")]
        )
        hint = _hint(err)
        if group is not None and loc:
            dotted = f"{group}.{loc[0]}"
            if err["type"] == "extra_forbidden":
                close = suggest_key(dotted)
                report.add(
                    Problem(
                        group,
                        f"unknown key '{dotted}'",
                        f"did you mean '{close}'?" if close else "",
                        code="unknown_key",
                        params={"key": dotted, "close": close, "nested": True},
                    )
                )
            else:
                value = (values.get(group) or {}).get(loc[0])
                report.add(
                    Problem(
                        group, f"{dotted}={value!r}: {messages[0]}", hint, **_bad_value(err, dotted, value)
                    )
                )
            continue
        key = next((p for p in loc if p in KEY_TO_GROUP), None)
        for message in messages:
            text = f"{key}={values.get(key)!r}: {message}" if key else message
            coded = _bad_value(err, key, values.get(key)) if key and len(messages) == 1 else {}
            report.add(Problem(key, text, hint if key else "", **coded))


def _bad_value(err: Any, key: str, value: Any) -> dict[str, Any]:
    """code and params of a value the schema rejected, for a translated rendering (tunelab.error_texts)."""
    ctx = {k: str(v) for k, v in (err.get("ctx") or {}).items() if k != "error"}
    params = {"key": key, "value": repr(value), "type": err["type"], "ctx": ctx, "detail": err["msg"]}
    return {"code": "bad_value", "params": params}


def _hint(err: Any) -> str:
    ctx = err.get("ctx") or {}
    if "expected" in ctx:
        return f"allowed values: {ctx['expected']}"
    for bound, word in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
        if bound in ctx:
            return f"use a value {word} {ctx[bound]}"
    return ""
