"""Classification metrics: accuracy, precision/recall/F1 (macro and per class), confusion matrix.

Pure functions of true and predicted labels (scikit-learn does the arithmetic), so stage ``cls``
during training, ``tunelab eval`` afterwards and tests on hand-made labels all share one definition.

Macro averages are taken over the classes that occur in the true or the predicted labels (as
scikit-learn does by default): a class missing from a small test split does not drag the average
to zero. Per-class rows are reported for every class of the model, with support 0 where absent.

Example::

    report = classification_report(["a", "b", "b"], ["a", "b", "a"], labels=["a", "b"])
    report.accuracy                  # 0.666...
    report.as_metrics("test")        # {"test_accuracy": ..., "test_f1_macro": ..., ...}
    write_confusion_matrix(report, run_dir, plots_dir=run_dir / "plots")
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "CONFUSION_JSON",
    "CONFUSION_PNG",
    "ClassificationReport",
    "classification_report",
    "compute_classification_metrics",
    "plot_confusion_matrix",
    "write_confusion_matrix",
]

CONFUSION_JSON = "confusion_matrix.json"
CONFUSION_PNG = "confusion_matrix.png"
# the scalar metrics stage cls reports at every evaluation (metric_for_best_model may name them)
SCALAR_METRICS = ("accuracy", "precision_macro", "recall_macro", "f1_macro")


@dataclass(frozen=True)
class ClassificationReport:
    """Metrics of one set of predictions; ``confusion[i][j]`` counts true ``labels[i]`` predicted ``labels[j]``."""

    labels: list[str]
    accuracy: float
    precision_macro: float
    recall_macro: float
    f1_macro: float
    per_class: dict[str, dict[str, float]]  # label -> precision, recall, f1, support
    confusion: list[list[int]]
    n_samples: int

    def as_metrics(self, prefix: str) -> dict[str, Any]:
        """Scalars as ``<prefix>_accuracy`` etc., plus per-class scores and the matrix (for metrics.json)."""
        metrics: dict[str, Any] = {f"{prefix}_{name}": getattr(self, name) for name in SCALAR_METRICS}
        metrics[f"{prefix}_samples"] = self.n_samples
        metrics[f"{prefix}_per_class"] = self.per_class
        metrics[f"{prefix}_confusion_matrix"] = {"labels": self.labels, "matrix": self.confusion}
        return metrics

    def to_dict(self) -> dict[str, Any]:
        """Everything, JSON-ready (what confusion_matrix.json holds)."""
        return {
            "labels": self.labels,
            "matrix": self.confusion,
            "rows": "true label",
            "columns": "predicted label",
            "n_samples": self.n_samples,
            **{name: getattr(self, name) for name in SCALAR_METRICS},
            "per_class": self.per_class,
        }


def _as_indices(values: Sequence[Any], labels: Sequence[str]) -> list[int]:
    """Positions in ``labels`` of ``values`` (class names, or ids already)."""
    index = {label: i for i, label in enumerate(labels)}
    out = []
    for value in values:
        if isinstance(value, str):
            if value not in index:
                raise ValueError(f"label {value!r} is not one of {list(labels)}")
            out.append(index[value])
        else:
            out.append(int(value))
    return out


def classification_report(
    y_true: Sequence[Any], y_pred: Sequence[Any], labels: Sequence[str]
) -> ClassificationReport:
    """Metrics of predictions ``y_pred`` against ``y_true`` (class names or ids into ``labels``)."""
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} true labels but {len(y_pred)} predictions")
    if not len(y_true):
        raise ValueError("no predictions to score")
    true, pred = _as_indices(y_true, labels), _as_indices(y_pred, labels)
    every = list(range(len(labels)))
    seen = sorted(set(true) | set(pred))
    p_macro, r_macro, f_macro, _ = precision_recall_fscore_support(
        true, pred, labels=seen, average="macro", zero_division=0
    )
    precision, recall, f1, support = precision_recall_fscore_support(
        true, pred, labels=every, average=None, zero_division=0
    )
    per_class = {
        label: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, label in enumerate(labels)
    }
    matrix = confusion_matrix(true, pred, labels=every)
    return ClassificationReport(
        labels=list(labels),
        accuracy=float(accuracy_score(true, pred)),
        precision_macro=float(p_macro),
        recall_macro=float(r_macro),
        f1_macro=float(f_macro),
        per_class=per_class,
        confusion=[[int(n) for n in row] for row in matrix],
        n_samples=len(true),
    )


def compute_classification_metrics(
    label_ids: Sequence[int], predicted_ids: Sequence[int], n_classes: int
) -> dict[str, float]:
    """The scalar metrics (accuracy, precision/recall/F1 macro) of id predictions, unprefixed.

    This is what the Trainer's ``compute_metrics`` returns at each evaluation (it adds ``eval_``).
    """
    report = classification_report(
        [int(i) for i in label_ids], [int(i) for i in predicted_ids], [str(i) for i in range(n_classes)]
    )
    return {name: getattr(report, name) for name in SCALAR_METRICS}


def write_confusion_matrix(
    report: ClassificationReport,
    directory: str | Path,
    *,
    plots_dir: str | Path | None = None,
    title: str = "confusion matrix",
) -> tuple[Path, Path]:
    """Write ``confusion_matrix.json`` into ``directory`` and ``confusion_matrix.png`` into
    ``plots_dir`` (default: ``directory``); returns both paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    json_path = directory / CONFUSION_JSON
    json_path.write_text(json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    png_path = Path(plots_dir or directory) / CONFUSION_PNG
    plot_confusion_matrix(report, png_path, title=title)
    return json_path, png_path


def plot_confusion_matrix(
    report: ClassificationReport,
    path: str | Path,
    *,
    title: str = "confusion matrix",
    lang: str | None = None,
) -> Path:
    """Draw the matrix as a heat map with class names on both axes and the count in every cell (axes in ``lang``)."""
    import matplotlib

    from tunelab.runs.plot_texts import plot_text

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tunelab.runs.fonts import use_cjk_fallback

    use_cjk_fallback()  # Chinese labels render instead of boxes
    from matplotlib.ticker import MaxNLocator

    labels, matrix = report.labels, report.confusion
    n = len(labels)
    size = min(12.0, 2.5 + 0.6 * n)
    long_names = max(len(label) for label in labels) > 6
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    with matplotlib.rc_context(_font_params(labels)):
        fig, ax = plt.subplots(figsize=(size + 1.0, size), dpi=100)
        image = ax.imshow(matrix, cmap="Blues", vmin=0)
        colorbar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label=plot_text("count", lang))
        colorbar.ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xticks(
            range(n), labels=labels, rotation=45 if long_names else 0, ha="right" if long_names else "center"
        )
        ax.set_yticks(range(n), labels=labels)
        ax.set_xlabel(plot_text("predicted", lang))
        ax.set_ylabel(plot_text("true", lang))
        ax.set_title(
            f"{title}\naccuracy {report.accuracy:.3f} · F1 macro {report.f1_macro:.3f} · n={report.n_samples}"
        )
        peak = max(max(row) for row in matrix)
        for i in range(n):
            for j in range(n):
                count = matrix[i][j]
                color = "white" if peak and count > peak / 2 else "black"
                ax.text(
                    j, i, str(count), ha="center", va="center", color=color, fontsize=11 if n <= 10 else 7
                )
        with warnings.catch_warnings():
            # without a CJK font (see _font_params) such names show as boxes; confusion_matrix.json has them
            warnings.filterwarnings("ignore", message="Glyph .* missing from font", category=UserWarning)
            fig.tight_layout()
            fig.savefig(tmp)
        plt.close(fig)
    tmp.replace(path)
    return path


_CJK_FONTS = (
    "Noto Sans CJK SC",
    "Noto Sans CJK JP",
    "WenQuanYi Zen Hei",
    "SimHei",
    "Microsoft YaHei",
    "PingFang SC",
)


def _font_params(labels: Sequence[str]) -> dict[str, Any]:
    """rc settings for the plot: a font with CJK glyphs first when class names need one (if installed)."""
    if all(label.isascii() for label in labels):
        return {}
    import matplotlib
    from matplotlib import font_manager

    installed = {font.name for font in font_manager.fontManager.ttflist}
    found = [name for name in _CJK_FONTS if name in installed]
    return {"font.sans-serif": [*found, *matplotlib.rcParams["font.sans-serif"]]} if found else {}
