"""Screenshot of the dashboard on the demo's data, for the README.

Run ``./run demo`` first (it leaves its store and reports in var/demo), then

    .venv/bin/python scripts/dashboard_screenshot.py [--out docs/img/dashboard-fund.png]

Serves the dashboard app (the same create_app the Airflow plugin mounts, its
login check waived: this is a local picture) with uvicorn on loopback and
photographs the example fund's page in Debian's Chromium (Playwright).
"""

from __future__ import annotations

import argparse
import socket
import sys
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "var" / "demo"
sys.path.insert(0, str(REPO / "plugins"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "img" / "dashboard-fund.png")
    ap.add_argument("--fund", default="JM-2021-YPJG")
    args = ap.parse_args(argv)
    db = DEMO / "budget_monitor.db"
    if not db.is_file():
        print(f"{db} is missing: run ./run demo first", file=sys.stderr)
        return 2

    import uvicorn
    from playwright.sync_api import sync_playwright

    from budget_monitor_airflow.dashboard import create_app

    app = create_app(
        db_url=lambda: f"sqlite:///{db}", funds_root=lambda: DEMO / "inbox", reports_root=lambda: DEMO / "reports"
    )
    app.dependency_overrides[app.state.access_dependency] = lambda: None
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        threading.Event().wait(0.05)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1280, "height": 1100}, device_scale_factor=1)
            page.goto(f"http://127.0.0.1:{sock.getsockname()[1]}/fund/{args.fund}/")
            args.out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(args.out), full_page=False)
            browser.close()
    finally:
        server.should_exit = True
        thread.join()
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
