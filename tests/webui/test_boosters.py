"""The booster boxes are enabled exactly where the booster can run: its key exists, its package and GPU are here."""

from __future__ import annotations

import importlib.util

import pytest

from tunelab.webui import topbar


def test_every_booster_sets_a_real_config_key() -> None:
    from tunelab.webui.forms import config_keys

    keys = set(config_keys())
    assert all(key in keys for key, _, _ in topbar.BOOSTERS.values())


def test_reasons_follow_package_and_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(topbar, "_cuda_available", lambda: False)
    reasons = topbar.detect_boosters()
    assert reasons["auto"] is None
    for name in ("fa2", "unsloth", "liger"):
        package = topbar.BOOSTERS[name][2]
        expected = "booster.no_package" if importlib.util.find_spec(package) is None else "booster.no_cuda"
        assert reasons[name] == expected
    monkeypatch.setattr(topbar, "_cuda_available", lambda: True)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object())
    assert all(reason is None for reason in topbar.detect_boosters().values())


def test_a_ticked_booster_sets_its_key() -> None:
    flat: dict = {}
    topbar.apply_boosters(flat, [False, False, False, True])
    assert flat == {"enable_liger_kernel": True}
