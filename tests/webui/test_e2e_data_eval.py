"""In real Chromium, in Chinese: upload a data file, page through its records, pick a benchmark task."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest


def _wait_text(page: Any, selector: str, text: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    shown = ""
    while time.monotonic() < deadline:
        shown = page.locator(selector).inner_text()
        if text in shown:
            return shown
        time.sleep(0.3)
    raise AssertionError(f"{selector} never showed {text!r}; it shows {shown!r}")


def _pick(page: Any, elem_id: str, option: str) -> None:
    page.locator(f"#{elem_id} input").click()
    page.get_by_role("option", name=option, exact=True).click()
    page.keyboard.press("Escape")


@pytest.mark.slow
@pytest.mark.ci  # 41 s under load on 2 shared cores
def test_upload_page_records_and_pick_a_benchmark_in_chinese(
    page: Any, webui_root: Path, tmp_path: Path
) -> None:
    upload = tmp_path / "faq.jsonl"
    rows = [{"instruction": f"问题 {i}", "input": "", "output": f"回答 {i}"} for i in range(12)]
    upload.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    data_dir = webui_root / "e2e-data"

    _pick(page, "tl-lang", "中文")
    page.get_by_role("tab", name="训练").wait_for()
    page.locator("#field-dataset_dir").locator("input, textarea").first.fill(str(data_dir))
    page.get_by_text("上传数据 / 浏览原始记录", exact=True).click()
    page.locator("#tl-upload-file input[type=file]").set_input_files(str(upload))
    _wait_text(page, "#tl-upload-status", "faq.jsonl：12 条记录，alpaca 格式，sft 数据")
    assert page.locator("#tl-upload-name").locator("input, textarea").first.input_value() == "faq"

    page.locator("#tl-upload-save").click()
    _wait_text(page, "#tl-upload-status", "已保存")
    assert json.loads((data_dir / "dataset_info.json").read_text())["faq"]["file_name"] == "faq.jsonl"
    _wait_text(page, "#tl-records", "第 1–5 条，共 12 条 · 第 1/3 页")
    page.locator("#tl-records-next").click()
    shown = _wait_text(page, "#tl-records", "第 6–10 条，共 12 条 · 第 2/3 页")
    assert "第 6 条" in shown and "回答 5" in shown and "回答 4" not in shown
    page.locator("#tl-records-next").click()
    page.locator("#tl-records-next").click()  # past the end: stays on the last page
    _wait_text(page, "#tl-records", "第 11–12 条，共 12 条 · 第 3/3 页")
    page.locator("#tl-records-prev").click()
    _wait_text(page, "#tl-records", "第 2/3 页")

    page.locator("#tl-upload-save").click()  # the same name again, without the replace box
    _wait_text(page, "#tl-upload-status", "faq.jsonl 未添加")

    page.get_by_role("tab", name="评估与预测").click()
    _pick(page, "tl-eval-task", "tunelab_mc")
    _wait_text(page, "#tl-eval-bench-info", "共 50 道待评分题目")
    page.locator("#tl-eval-n_shot input").fill("3")
    _pick(page, "tl-eval-task", "mmlu_test")
    _wait_text(page, "#tl-eval-bench-info", "请把解压后的 mmlu/ 目录放到")
    page.locator("#tl-eval-start").click()
    _wait_text(page, "#tl-eval-status", "mmlu 评测数据")
