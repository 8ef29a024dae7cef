"""Show a data check: a terminal summary, report.json and PNG histograms, in English or Chinese."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tunelab.quality.check import KINDS, QualityReport

__all__ = ["LABELS", "render_report", "write_report"]

# kind -> (en, zh)
LABELS: dict[str, tuple[str, str]] = {
    "malformed": ("malformed records", "格式错误的记录"),
    "empty": ("empty prompt/response", "空的提示或回答"),
    "exact": ("exact duplicates", "完全重复"),
    "near": ("near duplicates", "近似重复"),
    "conflicts": ("conflicting answers", "相互矛盾的回答"),
    "chosen_eq_rejected": ("chosen == rejected", "chosen 与 rejected 相同"),
    "contaminated": ("eval/test leaks into train", "评估/测试数据泄漏到训练集"),
    "too_long": ("longer than cutoff_len", "超过 cutoff_len"),
}
_TEXT = {
    "title": ("Data check", "数据检查"),
    "kind": ("problem", "问题"),
    "n": ("records", "记录数"),
    "example": ("first example", "示例"),
    "dataset": ("dataset", "数据集"),
    "scripts": ("scripts", "文字"),
    "clean": ("clean: no problems found", "干净：未发现问题"),
    "found": ("problems found", "发现问题"),
    "lengths": ("token lengths (train split)", "token 长度（训练集）"),
    "hist_title": ("Token length per record", "每条记录的 token 长度"),
    "hist_x": ("tokens (template + tokenizer of the config)", "token 数（按配置的模板与分词器）"),
    "hist_y": ("records", "记录数"),
    "cutoff": ("cutoff_len", "cutoff_len"),
}


def _t(key: str, lang: str) -> str:
    en, zh = LABELS.get(key) or _TEXT[key]
    return zh if lang == "zh" else en


def render_report(
    report: QualityReport, console: Any, *, lang: str = "en", fail_on: tuple[str, ...] | None = None
) -> None:
    """Print the summary table (one row per problem kind, with its first example) and the per-dataset facts."""
    from rich.table import Table

    table = Table(title=_t("title", lang))
    for column in ("kind", "n", "example"):
        table.add_column(_t(column, lang))
    counts = report.counts
    for kind in KINDS:
        first = next(iter(report.by_kind(kind)), None)
        example = ""
        if first is not None:
            example = f"{first.ref.describe()}: {first.detail}"
            if first.other is not None:
                example += f" ~ {first.other.describe()}"
        style = "red" if counts[kind] and (fail_on is None or kind in fail_on) else ""
        table.add_row(_t(kind, lang), str(counts[kind]), example[:120], style=style)
    console.print(table)
    for d in report.datasets:
        scripts = ", ".join(f"{k} {v:.0%}" for k, v in d["scripts"].items())
        console.print(
            f"{_t('dataset', lang)} {d['name']} ({d['role']}): {d['n_records']}/{d['n_rows']}  {_t('scripts', lang)}: {scripts}"
        )
    if report.lengths:
        lengths = report.as_dict()["lengths"]
        console.print(
            f"{_t('lengths', lang)}: min {lengths['min']}, mean {lengths['mean']}, p95 {lengths['p95']}, "
            f"max {lengths['max']}; > cutoff_len {report.cutoff_len}: {report.share_cut:.1%}"
        )
    for note in report.notes:
        console.print(f"[dim]{note}[/]")
    n = report.problems(fail_on) if fail_on is not None else report.n_problems
    console.print(f"[green]{_t('clean', lang)}[/]" if n == 0 else f"[red]{_t('found', lang)}: {n}[/]")


def _histogram(report: QualityReport, path: Path, lang: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tunelab.runs.fonts import use_cjk_fallback
    from tunelab.runs.plots import save_figure

    use_cjk_fallback()
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    ax.hist(report.lengths, bins=min(50, max(5, len(set(report.lengths)))), color="tab:blue", alpha=0.8)
    ax.axvline(
        report.cutoff_len,
        color="tab:red",
        linestyle="--",
        label=f"{_t('cutoff', lang)} = {report.cutoff_len}",
    )
    ax.set_title(f"{_t('hist_title', lang)} ({report.share_cut:.1%} > cutoff_len)")
    ax.set_xlabel(_t("hist_x", lang))
    ax.set_ylabel(_t("hist_y", lang))
    ax.legend()
    ax.grid(alpha=0.3)
    save_figure(fig, path)


def write_report(report: QualityReport, out_dir: str | Path) -> list[Path]:
    """Write report.json and, when lengths were measured, lengths.png (+ lengths.zh.png); return the files."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "report.json"
    path.write_text(json.dumps(report.as_dict(), ensure_ascii=False, indent=2), encoding="utf-8")
    written = [path]
    if report.lengths:
        for code, name in (("en", "lengths.png"), ("zh", "lengths.zh.png")):
            _histogram(report, out / name, code)
            written.append(out / name)
    return written
