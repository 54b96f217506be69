"""The dashboard in a real browser: Debian's Chromium driven by Playwright against the
app served by uvicorn on loopback. Screenshots are saved in the test's tmp dir
(BUDGET_MONITOR_SCREENSHOTS=<dir> keeps a copy there).

Needs scripts/setup.sh; under CI=true a missing browser is a failure.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from test_dashboard_plugin import CODE, site  # noqa: F401 - the store of the example fund

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _browser_or_skip():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        reason = f"playwright is not installed (scripts/setup.sh): {exc}"
    else:
        if Path(CHROMIUM).is_file():
            return sync_playwright
        reason = f"{CHROMIUM} is missing (scripts/setup.sh)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
def served(site: dict):  # noqa: F811 - the fixture imported above
    """The dashboard app (logged in) served by uvicorn on a free loopback port."""
    import uvicorn
    from budget_monitor import dashboard_data
    from budget_monitor_airflow.dashboard import create_app

    dashboard_data.clear_cache()
    app = create_app(db_url=lambda: site["db"], funds_root=lambda: site["inbox"], reports_root=lambda: site["reports"])
    app.dependency_overrides[app.state.access_dependency] = lambda: None
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    ready = threading.Event()
    for _ in range(600):  # until uvicorn listens (not a timed assertion: a bound on waiting)
        if server.started:
            ready.set()
            break
        threading.Event().wait(0.05)
    assert ready.is_set(), "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join()
        sock.close()


def test_finance_office_opens_the_dashboard_a_fund_and_a_unit(served: str, site: dict, tmp_path: Path):  # noqa: F811
    from budget_monitor import store
    from budget_monitor.pipeline import compute

    sync_playwright = _browser_or_skip()
    expected = compute(store.open_store(site["db"]), site["cfg"], 7)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    requested: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="zh-CN")
        page.on("request", lambda r: requested.append(r.url))

        page.goto(served + "/")
        row = page.locator(f"tr[data-code='{CODE}']")
        assert row.locator("[data-field='rate']").inner_text() == f"{expected.fund.month(7).rate_2dp:.2f}%"
        assert row.locator("[data-field='pace']").inner_text() == f"{expected.fund.month(7).pace_2dp:.2f}%"
        assert row.locator(".light").inner_text() == "黄灯"
        page.screenshot(path=str(shots / "1-overview.png"), full_page=True)

        row.locator("a").first.click()
        page.wait_for_load_state()
        assert page.url == f"{served}/fund/{CODE}/"
        assert page.locator(".headline [data-field='gap']").inner_text() == f"{expected.fund.month(7).gap_2dp:.2f}"
        assert page.locator("svg.chart circle").count() == 7
        assert page.locator("h1").inner_text().startswith("药品监督<b onmouseover")  # shown as text
        page.screenshot(path=str(shots / "2-fund.png"), full_page=True)

        unit = expected.units[0]
        page.locator(f"tr[data-unit='{unit.unit}'] a").click()
        page.wait_for_load_state()
        assert page.locator("h1").inner_text() == unit.unit
        assert page.locator(".headline [data-field='rate']").inner_text() == f"{unit.latest.rate_2dp:.2f}%"
        page.screenshot(path=str(shots / "3-unit.png"), full_page=True)
        browser.close()

    hosts = {urlsplit(u).netloc for u in requested}
    assert hosts == {urlsplit(served).netloc}, hosts  # nothing from another host
    assert any(u.endswith("/static/dashboard.css") for u in requested)
    keep = os.environ.get("BUDGET_MONITOR_SCREENSHOTS")
    if keep:
        shutil.copytree(shots, keep, dirs_exist_ok=True)
