"""Read-only web page listing the quarantine reports of every fund (Chinese UI).

Mounted in the api-server by ``budget_monitor_plugin.py`` under
``/budget-monitor``; linked from the Airflow navigation bar.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from budget_monitor_airflow import settings


def quarantine_reports(root: Path | None = None) -> list[dict]:
    """Every ``<fund>/quarantine/*.report.json`` under the inbox root, newest first."""
    root = root or settings.funds_root()
    out = []
    for report in root.glob("*/quarantine/*.report.json"):
        try:
            body = json.loads(report.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            body = {}
        out.append(
            {
                "fund": report.parent.parent.name,
                "report": report.name,
                "file": body.get("file") or report.name.removesuffix(".report.json"),
                "rejected_at": body.get("rejected_at", ""),
                "reason": body.get("reason", ""),
            }
        )
    return sorted(out, key=lambda r: r["rejected_at"], reverse=True)


def render_page(reports: list[dict]) -> str:
    rows = (
        "".join(
            "<tr>"
            + "".join(f"<td>{html.escape(str(r[k]))}</td>" for k in ("rejected_at", "fund", "file"))
            + f"<td>{html.escape(r['reason'])}</td>"
            + f"<td><a href='report/{html.escape(r['fund'])}/{html.escape(r['report'])}'>JSON</a></td></tr>"
            for r in reports
        )
        or "<tr><td colspan='5'>隔离区为空</td></tr>"
    )
    return (
        "<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'><title>隔离区</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{border:1px solid #ccc;padding:4px 8px}"
        "table{border-collapse:collapse}</style></head><body>"
        f"<h1>被退回的数据文件（{len(reports)}）</h1>"
        "<table><tr><th>退回时间</th><th>专项资金</th><th>文件</th><th>原因</th><th>报告</th></tr>"
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

    return app
