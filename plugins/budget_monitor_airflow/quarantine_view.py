"""Read-only web page listing the quarantine reports of every fund (Chinese UI),
and every fund's Data Docs (budget_monitor/validation/docs.py).

Mounted in the api-server by ``budget_monitor_plugin.py`` under
``/budget-monitor``; linked from the Airflow navigation bar. The Data Docs
pages are served from ``<fund>/data_docs/`` under ``docs/<fund>/``
(``BUDGET_MONITOR_DOCS_URL`` in a deployment is this route's address, so
that rejection notices link the page): they are self-contained HTML, so
nothing is loaded from outside the intranet.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from urllib.parse import quote

from budget_monitor_airflow import settings

DOCS_DIR = "data_docs"  # budget_monitor.validation.docs.DOCS_DIR (not imported: the page loads light)
DOCS_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; base-uri 'none'; form-action 'none'"


def quarantine_reports(root: Path | None = None) -> list[dict]:
    """Every ``<fund>/quarantine/*.report.json`` under the inbox root, newest first."""
    root = root or settings.funds_root()
    out = []
    for report in root.glob("*/quarantine/*.report.json"):
        try:
            body = json.loads(report.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            body = {}
        fund = report.parent.parent.name
        quarantined = report.name.removesuffix(".report.json")
        out.append(
            {
                "fund": fund,
                "report": report.name,
                "file": body.get("file") or quarantined,
                "rejected_at": body.get("rejected_at", ""),
                "reason": body.get("reason", ""),
                "docs": _docs_page(report.parent.parent, str(body.get("kind") or ""), quarantined),
            }
        )
    return sorted(out, key=lambda r: r["rejected_at"], reverse=True)


def _docs_page(fund_dir: Path, kind: str, quarantined: str) -> str | None:
    """The Data Docs page of a rejected file (relative to the fund's docs), when it was built."""
    for folder in (kind, "any"):
        page = f"validations/{folder}/{quarantined}.html"
        if folder and "/" not in folder and (fund_dir / DOCS_DIR / page).is_file():
            return page
    return None


def _docs_link(r: dict) -> str:
    if not r.get("docs"):
        return "<td>—</td>"
    href = f"docs/{quote(r['fund'], safe='')}/{quote(r['docs'])}"
    return f"<td><a href='{html.escape(href)}'>校验报告</a></td>"


def render_page(reports: list[dict]) -> str:
    rows = (
        "".join(
            "<tr>"
            + "".join(f"<td>{html.escape(str(r[k]))}</td>" for k in ("rejected_at", "fund", "file"))
            + f"<td>{html.escape(r['reason'])}</td>"
            + _docs_link(r)
            + f"<td><a href='report/{html.escape(r['fund'])}/{html.escape(r['report'])}'>JSON</a></td></tr>"
            for r in reports
        )
        or "<tr><td colspan='6'>隔离区为空</td></tr>"
    )
    return (
        "<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'><title>隔离区</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{border:1px solid #ccc;padding:4px 8px}"
        "table{border-collapse:collapse}</style></head><body>"
        f"<h1>被退回的数据文件（{len(reports)}）</h1>"
        "<table><tr><th>退回时间</th><th>专项资金</th><th>文件</th><th>原因</th><th>数据校验报告</th><th>报告</th></tr>"
        f"{rows}</table></body></html>"
    )


def create_app():  # -> fastapi.FastAPI
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi import Depends, FastAPI, HTTPException
    from fastapi.responses import HTMLResponse, JSONResponse

    # Logged-in users only (the UI's session cookie or a Bearer token): the
    # reports show file names and rejected values.
    app = FastAPI(title="budget-monitor quarantine", dependencies=[Depends(get_user)])

    @app.get("/quarantine", response_class=HTMLResponse)
    def quarantine_page() -> str:
        return render_page(quarantine_reports())

    @app.get("/quarantine.json")
    def quarantine_json() -> list[dict]:
        return quarantine_reports()

    @app.get("/report/{fund}/{name}")
    def report(fund: str, name: str) -> JSONResponse:
        root = settings.funds_root().resolve()
        path = (root / fund / "quarantine" / name).resolve()
        # Only report files inside the inbox's quarantine folders are served.
        if not name.endswith(".report.json") or path.parent.parent.parent != root or not path.is_file():
            raise HTTPException(status_code=404)
        return JSONResponse(json.loads(path.read_text(encoding="utf-8")))

    @app.get("/docs/{fund}/{page:path}", response_class=HTMLResponse)
    def data_docs(fund: str, page: str) -> HTMLResponse:
        path = docs_file(settings.funds_root(), fund, page or "index.html")
        if path is None:
            raise HTTPException(status_code=404)
        # The pages load nothing from anywhere; the policy keeps it so (no script runs at all).
        return HTMLResponse(path.read_text(encoding="utf-8"), headers={"Content-Security-Policy": DOCS_CSP})

    return app


def docs_file(root: Path, fund: str, page: str) -> Path | None:
    """``<root>/<fund>/data_docs/<page>`` when it is an HTML page inside that
    fund's docs (no ``..``, no link out of it), else None."""
    docs = (root / fund / DOCS_DIR).resolve()
    path = (docs / page).resolve()
    if "/" in fund or fund in ("", ".", "..") or not page.endswith(".html"):
        return None
    if docs.parent.parent != root.resolve() or not path.is_relative_to(docs) or not path.is_file():
        return None
    return path
