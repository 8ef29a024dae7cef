"""The data check as the web UI shows it under the data preview: one row per problem kind."""

from __future__ import annotations

import html
from typing import Any

__all__ = ["check_html"]

_HEAD = {
    "en": ("Data check", "problem", "records", "first example", "no problems found", "problems found: {n}"),
    "zh": ("数据检查", "问题", "记录数", "示例", "未发现问题", "发现问题：{n}"),
}


def check_html(report: Any, lang: str) -> str:
    """An HTML table of a QualityReport: counts per kind (red when non-zero) and each kind's first finding."""
    from tunelab.quality.check import DEFAULT_FAIL_ON, KINDS
    from tunelab.quality.report import LABELS

    title, kind_h, n_h, ex_h, clean, found = _HEAD["zh" if lang == "zh" else "en"]
    counts = report.counts
    rows = []
    for kind in KINDS:
        if kind == "too_long" and not counts[kind]:
            continue
        first = next(iter(report.by_kind(kind)), None)
        example = ""
        if first is not None:
            example = f"{first.ref.describe()}: {first.detail}" + (
                f" ~ {first.other.describe()}" if first.other else ""
            )
        style = " style='color:#c0392b;font-weight:600'" if counts[kind] and kind in DEFAULT_FAIL_ON else ""
        label = LABELS[kind][1 if lang == "zh" else 0]
        rows.append(
            f"<tr{style}><td>{html.escape(label)}</td><td>{counts[kind]}</td><td>{html.escape(example[:160])}</td></tr>"
        )
    verdict = clean if report.n_problems == 0 else found.format(n=report.n_problems)
    return (
        f"<div class='tl-data-check'><b>{html.escape(title)}</b> · {html.escape(verdict)}"
        f"<table><thead><tr><th>{kind_h}</th><th>{n_h}</th><th>{ex_h}</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )
