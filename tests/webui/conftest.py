"""Fixtures of the web UI tests: the app served in-process on a free port, and real headless Chromium."""

from __future__ import annotations

import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def webui_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("webui")


@pytest.fixture(scope="session")
def served_app(webui_root: Path, tiny_model_dir: Path) -> Iterator[tuple[Any, str]]:
    """(app, url): the web UI on a free loopback port; jobs it started are stopped at the end."""
    from tunelab.webui.app import create_app, serve

    app = create_app(
        runs_dir=webui_root / "runs",
        state_dir=webui_root / "state",
        allowed=[webui_root, tiny_model_dir.parent],
    )
    port = _free_port()
    serve(app, port=port, block=False)
    yield app, f"http://127.0.0.1:{port}/"
    ctx = app.tunelab_context
    ctx.jobs.abort_all()
    for job in ctx.jobs.jobs():
        ctx.jobs.wait(job.id, timeout=60)
    app.close()


@pytest.fixture
def ui_context(tmp_path: Path) -> Any:
    """A UIContext without widgets (handlers that need no form), whose paths may lie under tmp_path."""
    from tunelab.webui.context import UIContext
    from tunelab.webui.jobs import JobManager
    from tunelab.webui.paths import PathGuard

    state = tmp_path / "state"
    return UIContext(
        runs_dir=tmp_path / "runs", state_dir=state, jobs=JobManager(state), guard=PathGuard([tmp_path])
    )


@pytest.fixture(scope="session")
def playwright_driver() -> Iterator[Any]:
    """Playwright, once per session (its sync API allows one driver per thread)."""
    if not CHROMIUM.is_file():
        pytest.skip(
            "end-to-end web UI tests need Debian's chromium at /usr/bin/chromium (make browser installs it)"
        )
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the test extra)")
    with sync_api.sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="session")
def browser(playwright_driver: Any) -> Iterator[Any]:
    """One browser profile (a persistent context): its tabs share cookies, like one user's tabs."""
    context = playwright_driver.chromium.launch_persistent_context(
        tempfile.mkdtemp(prefix="tunelab-chromium-"),
        executable_path=str(CHROMIUM),
        headless=True,
        args=CHROMIUM_ARGS,
        viewport={"width": 1400, "height": 1000},
    )
    yield context
    context.close()


@pytest.fixture(scope="session")
def chromium(playwright_driver: Any) -> Iterator[Any]:
    """Headless Chromium whose ``new_context()`` gives separate users (no shared cookies or storage)."""
    launched = playwright_driver.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
    )
    yield launched
    launched.close()


@pytest.fixture
def page(browser: Any, served_app: tuple[Any, str]) -> Iterator[Any]:
    """A fresh tab on the app, English; closed after the test."""
    tab = browser.new_page()
    tab.set_default_timeout(30_000)
    tab.goto(served_app[1])
    tab.locator("#tl-lang").wait_for()
    yield tab
    tab.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """On a failed browser test, save a full-page screenshot and name its path in the failure."""
    outcome = yield
    report = outcome.get_result()
    tab = getattr(item, "funcargs", {}).get("page")
    if report.when == "call" and report.failed and tab is not None:
        shots = Path(tempfile.mkdtemp(prefix="tunelab-webui-failure-"))
        path = shots / f"{item.name}.png"
        try:
            tab.screenshot(path=str(path), full_page=True)
            report.sections.append(("screenshot", f"saved the page at failure: {path}"))
            report.longrepr = f"{report.longrepr}\n\nscreenshot of the page at failure: {path}"
        except Exception as exc:  # noqa: BLE001 - the test already failed; say why there is no picture
            report.sections.append(("screenshot", f"no screenshot: {exc}"))
