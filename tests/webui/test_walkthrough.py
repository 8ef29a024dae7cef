"""A new user's whole pass through the web UI, in real Chromium against real `tunelab webui` processes.

Train a tiny model; restart the UI while it trains (the training process lives on); the new UI
re-attaches and shows the run finished; train a second run; evaluate the first; chat with it from two
separate browsers at once; export it; compare the two runs in the Runs tab. Each step checks what the
user sees, and that none of issue 17's problems shows up (a finished job shown as "failed (exit code
None)", one user's chat reaching another's).

The UI runs as `python -m tunelab webui` subprocesses, so that restarting it is a real restart; HOME
points at a test folder, so its job records (~/.cache/tunelab/webui) are the test's own.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

# slow, not yet ci: every leg up to export passes, but picking runs in the Runs tab's "Runs to compare"
# list times out intermittently (both runs are offered in the list; the click does not land), not yet
# understood
pytestmark = [pytest.mark.slow]

# the status words a finished job must never show (the bug of a re-attached job)
_WRONG_ENDINGS = ("failed", "lost", "exit code", "None")


def _wait_for(predicate: Any, timeout: float, what: str, every: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class WebUI:
    """One `tunelab webui` process on a free port; ``stop`` is Ctrl-C in its terminal."""

    def __init__(self, root: Path, allowed: list[Path], n: int) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        self.url = f"http://127.0.0.1:{port}/"
        self.log = root / f"webui-{n}.log"
        command = [sys.executable, "-m", "tunelab", "webui", "--port", str(port), "--lang", "en"]
        command += ["--runs-dir", str(root / "runs")]
        for folder in allowed:
            command += ["--allow", str(folder)]
        env = {**os.environ, "HOME": str(root / "home"), "PYTHONUNBUFFERED": "1"}
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
        _wait_for(self._ready, 240, f"the web UI at {self.url} (log: {self.log})", every=1)

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(
                f"the web UI exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}"
            )
        try:
            with urllib.request.urlopen(self.url, timeout=5) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)


def _stop_jobs(state_dir: Path) -> None:
    """End the jobs the UIs started that still run (only after a failure): their own process groups."""
    try:
        records = json.loads((state_dir / "jobs.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return
    for record in records:
        try:
            os.killpg(int(record["pid"]), signal.SIGTERM)
        except (ProcessLookupError, PermissionError, KeyError, ValueError):
            continue


def _open(context: Any, url: str) -> Any:
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(url)
    page.locator("#tl-lang").wait_for()
    return page


def _pick(page: Any, elem_id: str, option: str) -> None:
    # the list is re-rendered while a refresh lands (the option detaches): open it again
    box = page.locator(f"#{elem_id} input")
    for attempt in range(3):
        box.click()
        try:
            # a run outside the runs folder is listed by its path: match the last part
            name = re.compile(rf"(^|\/){re.escape(option)}$")  # "\/": playwright writes the regex as /.../
            page.get_by_role("option", name=name).click(timeout=10_000)
            break
        except Exception:  # noqa: BLE001 - playwright's TimeoutError; the last attempt re-raises
            page.keyboard.press("Escape")
            if attempt == 2:
                raise
    page.keyboard.press("Escape")


def _type_custom(page: Any, elem_id: str, value: str) -> None:
    box = page.locator(f"#{elem_id} input")
    box.click()
    box.fill(value)
    box.press("Enter")
    page.keyboard.press("Escape")


def _fill(page: Any, key: str, value: str) -> None:
    page.locator(f"#field-{key}").locator("input, textarea").first.fill(value)


def _text(page: Any, selector: str) -> str:
    return page.locator(selector).inner_text()


def _progress(page: Any) -> tuple[str, int, int]:
    node = page.locator("#tl-train-progress .tl-progress")
    if node.count() == 0:
        return "", 0, 0
    return (
        node.get_attribute("data-status") or "",
        int(node.get_attribute("data-step") or 0),
        int(node.get_attribute("data-total") or 0),
    )


def _fill_training(page: Any, model_dir: Path, run_dir: Path, max_steps: int, learning_rate: str) -> None:
    _type_custom(page, "field-model_name_or_path", str(model_dir))
    _pick(page, "field-dataset", "identity_en")
    _fill(page, "cutoff_len", "64")
    _fill(page, "learning_rate", learning_rate)
    page.get_by_text("Extra settings", exact=True).click()
    steps = page.locator("#field-max_steps input")
    steps.wait_for()  # a closed accordion mounts its fields on first open; typing earlier is lost
    _wait_for(lambda: steps.input_value() != "", 10, "the extra settings to mount")
    page.wait_for_timeout(500)
    _fill(page, "max_steps", str(max_steps))
    _fill(page, "logging_steps", "1")
    _fill(page, "save_steps", "1000")
    _fill(page, "output_dir", str(run_dir))


def _choose_model(page: Any, model_dir: Path, adapter: Path) -> None:
    _type_custom(page, "field-model_name_or_path", str(model_dir))
    page.locator("#tl-refresh-adapters").click()
    page.wait_for_timeout(500)
    _type_custom(page, "field-adapter_name_or_path", str(adapter))


@contextmanager
def _screenshots_on_failure(pages: list[Any]) -> Iterator[None]:
    try:
        yield
    except BaseException as exc:
        shots = []
        for i, page in enumerate(p for p in pages if not p.is_closed()):
            path = Path(f"/tmp/tunelab-walkthrough-{os.getpid()}-{i}.png")
            try:
                page.screenshot(path=str(path), full_page=True)
                shots.append(str(path))
            except Exception:  # noqa: BLE001 - the test already failed; keep its own error
                continue
        if shots:
            exc.add_note("screenshots of the pages at failure: " + ", ".join(shots))
        raise


def test_a_new_user_trains_restarts_the_ui_evaluates_chats_exports_and_compares(
    chromium: Any, tiny_model_dir: Path, tmp_path: Path
) -> None:
    root = tmp_path
    (root / "home").mkdir()
    state_dir = root / "home" / ".cache" / "tunelab" / "webui"
    run_a, run_b = root / "runs" / "walk-a", root / "runs" / "walk-b"
    allowed = [root, tiny_model_dir.parent]
    users = [chromium.new_context(viewport={"width": 1400, "height": 1000}) for _ in range(2)]
    pages: list[Any] = []
    ui = WebUI(root, allowed, 1)
    try:
        with _screenshots_on_failure(pages):
            page = _open(users[0], ui.url)
            pages.append(page)

            # 1. train; once it runs, restart the UI (Ctrl-C): the training process lives on
            _fill_training(page, tiny_model_dir, run_a, max_steps=80, learning_rate="0.002")
            page.locator("#tl-train-start").click()
            _wait_for(lambda: _progress(page)[1] >= 1, 180, "the first logged step")
            assert _progress(page)[0] == "running" and _progress(page)[2] == 80
            ui.stop()
            ui = WebUI(root, allowed, 2)

            # 2. the new UI re-attaches: running, then finished; never failed, lost or "exit code None"
            page.goto(ui.url)
            page.locator("#tl-lang").wait_for()
            seen: set[str] = set()

            def finished() -> bool:
                status = _progress(page)[0]
                seen.add(status)
                return status == "finished"

            _wait_for(finished, 300, "the re-attached job to finish")
            assert not seen & {"failed", "lost", "aborted"}, seen
            assert _progress(page)[1:] == (80, 80)
            ending = _wait_for(lambda: _text(page, "#tl-train-status").strip(), 20, "the ending message")
            assert ending.startswith("Finished") and "train_loss=" in ending, ending
            assert not any(word in ending for word in _WRONG_ENDINGS), ending
            assert (run_a / "adapter_model.safetensors").is_file()

            # 3. a second run (another learning rate), started from the restarted UI
            page.reload()
            page.locator("#tl-lang").wait_for()
            # the reloaded page has shown the last run (its load events are done) before the user types
            _wait_for(lambda: _progress(page)[0] == "finished", 120, "the reloaded page to show the last run")
            _fill_training(page, tiny_model_dir, run_b, max_steps=12, learning_rate="0.0005")
            page.locator("#tl-train-start").click()
            _wait_for(lambda: _progress(page)[2] == 12, 180, "the page to watch the second run")
            _wait_for(lambda: _progress(page)[0] not in ("", "running"), 300, "the second run to end")
            assert _progress(page) == ("finished", 12, 12), _text(page, "#tl-train-status")
            assert _text(page, "#tl-train-status").startswith("Finished")

            # 4. evaluate the first run (loss on held-out records, and generated answers)
            page.reload()
            page.locator("#tl-lang").wait_for()
            _choose_model(page, tiny_model_dir, run_a)
            page.get_by_role("tab", name="Evaluate & Predict").click()
            _pick(page, "tl-eval-eval_dataset", "identity_en")
            page.locator("#tl-eval-max_samples").locator("input, textarea").first.fill("8")
            page.locator("#tl-eval-predict_with_generate input").check()
            page.locator("#tl-eval-max_new_tokens").locator("input, textarea").first.fill("12")
            page.locator("#tl-eval-save_dir").locator("input, textarea").first.fill(
                str(root / "runs" / "eval-a")
            )
            page.locator("#tl-eval-start").click()
            _wait_for(
                lambda: _text(page, "#tl-eval-status").startswith(("finished", "failed", "lost")),
                300,
                "the evaluation to end",
            )
            assert "finished" in _text(page, "#tl-eval-status"), _text(page, "#tl-eval-status")
            metrics = _text(page, "#tl-eval-metrics")
            assert "eval_loss" in metrics and "rouge" in metrics.lower(), metrics
            assert json.loads((root / "runs" / "eval-a" / "metrics.json").read_text())["eval_loss"] > 0

            # 5. chat from two separate browsers at once: each gets its own reply and history
            other = _open(users[1], ui.url)
            pages.append(other)
            _choose_model(other, tiny_model_dir, run_a)
            questions = {page: "Who are you?", other: "What can you do?"}
            for tab in (page, other):
                tab.get_by_role("tab", name="Chat").click()
                tab.locator("#tl-chat-load").click()
            for tab in (page, other):
                _wait_for(lambda t=tab: "Loaded" in _text(t, "#tl-chat-status"), 120, "the model to load")
                tab.locator("#tl-chat-max-new-tokens input").fill("16")
                tab.locator("#tl-chat-input textarea").fill(questions[tab])
            for tab in (page, other):  # both replies generate at the same time
                tab.locator("#tl-chat-send").click()
            for tab in (page, other):
                _wait_for(lambda t=tab: "generated" in _text(t, "#tl-chat-status"), 120, "the reply")
            page.locator("#tl-chat-input textarea").fill("And your name?")
            page.locator("#tl-chat-send").click()
            _wait_for(lambda: _text(page, "#tl-chatbot").count("And your name?") == 1, 60, "the second turn")
            _wait_for(lambda: "generated" in _text(page, "#tl-chat-status"), 120, "the second reply")
            mine, theirs = _text(page, "#tl-chatbot"), _text(other, "#tl-chatbot")
            assert "Who are you?" in mine and "And your name?" in mine and "What can you do?" not in mine
            assert (
                "What can you do?" in theirs
                and "Who are you?" not in theirs
                and "And your name?" not in theirs
            )
            for tab, turns in ((page, 2), (other, 1)):
                bots = tab.locator("#tl-chatbot [data-testid='bot']")  # one per reply (gradio 6)
                assert bots.count() == turns and all(bots.nth(i).inner_text().strip() for i in range(turns))

            # 6. export the first run (merged, verified against the source's logits)
            export_dir = root / "exports" / "walk-a"
            page.get_by_role("tab", name="Export").click()
            page.locator("#tl-export-export_dir").locator("input, textarea").first.fill(str(export_dir))
            page.locator("#tl-export-start").click()
            _wait_for(lambda: "Verification" in _text(page, "#tl-export-verdict"), 300, "the verification")
            assert "Verification passed" in _text(page, "#tl-export-verdict")
            assert (export_dir / "export_report.json").is_file()

            # 7. compare the two runs: both finished in the list, curves overlaid, the settings that differ
            page.get_by_role("tab", name="Runs").click()
            page.locator("#tl-runs-refresh").click()
            table = page.locator("#tl-runs-table")
            _wait_for(lambda: "walk-b" in table.inner_text(), 30, "both runs in the list")
            for row in table.locator("tr").all():
                cells = row.inner_text()
                if "walk-a" in cells or "walk-b" in cells:
                    assert "finished" in cells and "failed" not in cells, cells
            page.wait_for_timeout(2000)  # let the refresh's other outputs land before picking
            _pick(page, "tl-runs-pick", "walk-a")
            _pick(page, "tl-runs-pick", "walk-b")
            page.locator("#tl-runs-compare").click()
            _wait_for(lambda: page.locator("#tl-runs-curves img").count() == 1, 60, "the overlaid curves")
            runs_tab = _text(page, "#tl-tab-runs")
            assert "learning_rate" in runs_tab and "max_steps" in runs_tab, runs_tab  # the config differences
            assert "train_loss" in runs_tab
    finally:
        ui.stop()
        _stop_jobs(state_dir)
        for user in users:
            user.close()
