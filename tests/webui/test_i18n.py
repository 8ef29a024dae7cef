"""Every UI text exists in English and Chinese, and every text the code asks for exists."""

from __future__ import annotations

import re
from pathlib import Path

import tunelab.webui
from tunelab.webui.i18n import TEXTS, tr


def test_every_text_has_both_languages() -> None:
    for key, entry in TEXTS.items():
        assert entry.get("en") and entry.get("zh"), key


def test_every_text_key_used_in_the_code_exists() -> None:
    source = "\n".join(
        p.read_text(encoding="utf-8") for p in Path(tunelab.webui.__file__).parent.rglob("*.py")
    )
    used = set(re.findall(r"""tr\(\s*["']([a-z_.\-]+)["']""", source))
    used |= set(re.findall(r"""(?:label|value)\([^,]+,\s*["']([a-z_\-]+\.[a-z_.\-]+)["']""", source))
    assert used, "the scan found no keys"
    assert sorted(k for k in used if k not in TEXTS) == []


def test_placeholders_are_filled() -> None:
    assert tr("progress.step", "zh", step=3, total=10, pct="30") == "第 3/10 步（30%）"
    assert tr("msg.saved", "en", path="a.yaml") == "Saved a.yaml"
