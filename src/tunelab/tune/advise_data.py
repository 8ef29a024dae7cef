"""What a data check tells the advisor: clean first when duplicates are common, never train on leaks.

Recipes assume the data is what it claims to be. Duplicates inflate epochs and overweight some
examples; eval records inside the training split make every eval figure (and so early stopping,
lr-find and tune) optimistic. The advisor runs the fast, tokenizer-free part of ``tunelab data
check`` and turns what it finds into notes next to its recommendation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tunelab.errors import TunelabError

if TYPE_CHECKING:
    from tunelab.config import RunConfig

__all__ = ["DUPLICATE_SHARE_TO_CLEAN", "data_quality_notes"]

DUPLICATE_SHARE_TO_CLEAN = 0.03  # beyond 3% duplicated records, cleaning changes what a run learns


def data_quality_notes(config: RunConfig) -> list[tuple[str, str]]:
    """(en, zh) notes about duplicates, leaks, conflicts and broken records in ``config``'s data."""
    from tunelab.quality import check_data

    try:
        report = check_data(config, tokens=False)
    except TunelabError as err:
        return [(f"data check skipped: {err.message}", f"未能检查数据：{err.message}")]
    counts, n = report.counts, max(1, sum(d["n_records"] for d in report.datasets if d["role"] == "train"))
    notes = []
    duplicated = counts["exact"] + counts["near"]
    if duplicated / n > DUPLICATE_SHARE_TO_CLEAN:
        notes.append(
            (
                f"{duplicated} of {n} training records ({duplicated / n:.0%}) duplicate others (exact {counts['exact']}, "
                f"near {counts['near']}): clean first with `tunelab data clean CFG -o DIR`, then train with dataset_dir=DIR",
                f"{n} 条训练记录中有 {duplicated} 条（{duplicated / n:.0%}）与其他记录重复（完全 {counts['exact']}，"
                f"近似 {counts['near']}）：建议先运行 `tunelab data clean CFG -o DIR` 清洗，再用 dataset_dir=DIR 训练",
            )
        )
    if counts["contaminated"]:
        notes.append(
            (
                f"{counts['contaminated']} eval/test records also appear in the training split: eval loss, early "
                "stopping and tune results would be optimistic; `tunelab data clean` removes the training copies",
                f"{counts['contaminated']} 条评估/测试记录也出现在训练集中：评估损失、早停和调参结果会偏乐观；"
                "`tunelab data clean` 会删除训练集中的副本",
            )
        )
    if counts["conflicts"]:
        notes.append(
            (
                f"{counts['conflicts']} records answer the same prompt differently: the model learns the average; "
                "check them (`tunelab data check`)",
                f"{counts['conflicts']} 条记录对同一提示给出不同回答：模型会学到它们的平均；请检查（`tunelab data check`）",
            )
        )
    broken = counts["malformed"] + counts["empty"] + counts["chosen_eq_rejected"]
    if broken:
        notes.append(
            (
                f"{broken} records are malformed, empty or have chosen == rejected: see `tunelab data check`",
                f"{broken} 条记录格式错误、为空或 chosen 与 rejected 相同：见 `tunelab data check`",
            )
        )
    return notes
