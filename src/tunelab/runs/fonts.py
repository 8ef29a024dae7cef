"""Make matplotlib draw Chinese: put an installed CJK font behind DejaVu Sans in the fallback list.

matplotlib picks one family for a whole text and draws missing glyphs as boxes ("tofu"); since 3.6
it falls back glyph by glyph through the families listed in ``font.family`` (concrete names: the
generic "sans-serif" entry resolves to a single font and does not fall back). Latin text keeps
DejaVu Sans, Chinese characters come from the first CJK family found on the machine. Where none
is installed, plots stay readable in English and Chinese labels show as boxes: install one
(Debian: fonts-wqy-zenhei or fonts-noto-cjk).
"""

from __future__ import annotations

from functools import cache

__all__ = ["CJK_FAMILIES", "use_cjk_fallback"]

# in order of preference; the first one installed wins
CJK_FAMILIES = (
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "Source Han Sans SC",
    "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei",
    "Microsoft YaHei",
    "PingFang SC",
    "SimHei",
)


@cache
def use_cjk_fallback() -> str | None:
    """Register the fallback (once per process); return the CJK family used, or None when none is installed."""
    import logging

    import matplotlib
    from matplotlib import font_manager

    installed = {f.name for f in font_manager.fontManager.ttflist}
    family = next((name for name in CJK_FAMILIES if name in installed), None)
    if family is not None:
        matplotlib.rcParams["font.family"] = ["DejaVu Sans", family]
        matplotlib.rcParams["axes.unicode_minus"] = False
        # CJK fonts often ship one weight (e.g. 500); matplotlib says so on every lookup
        logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
    return family
