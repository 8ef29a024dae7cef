"""Chinese plot labels render with a CJK font when one is installed (no 'missing glyph' boxes)."""

from __future__ import annotations

import warnings

import pytest

from tunelab.runs.fonts import use_cjk_fallback


def test_chinese_title_has_every_glyph(tmp_path):
    family = use_cjk_fallback()
    if family is None:
        pytest.skip("no CJK font installed (Debian: fonts-wqy-zenhei, which `make browser` installs)")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.set_title("训练损失 training loss")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns "Glyph ... missing from font(s)" for tofu
        fig.savefig(tmp_path / "zh.png")
    plt.close(fig)
