"""Bodies of the year-end DAG's tasks: Airflow glue around budget_monitor.pipeline."""

from __future__ import annotations

import html
import logging
from pathlib import Path

from budget_monitor_airflow import settings
from budget_monitor_airflow.assets import MONTHLY_CLOSE

log = logging.getLogger(__name__)


def year_from_context(context) -> int | None:
    """Year to report, or None when this run needs no report.

    Param ``year`` wins. An asset-triggered run reports the year of a December
    close; the other months' closes need nothing. A manual run without
    ``year`` reports the previous calendar year.
    """
    from budget_monitor_airflow.periods import run_moment

    if context["params"].get("year"):
        return int(context["params"]["year"])
    events = context.get("triggering_asset_events") or {}
    extras = [ev.extra or {} for key in events if key.uri == MONTHLY_CLOSE.uri for ev in events[key]]
    if extras:
        decembers = [int(e["year"]) for e in extras if int(e.get("month", 0)) == 12]
        return max(decembers) if decembers else None
    return run_moment(context).year - 1


def fund_dirs(fund_filter: str = "") -> list[str]:
    from budget_monitor.config import load_fund_config
    from budget_monitor.pipeline import discover_funds

    funds = discover_funds(settings.funds_root())
    if fund_filter:
        funds = [d for d in funds if fund_filter in (d.name, load_fund_config(d).code)]
    return [str(d) for d in funds]


def build(fund_dir: str, year: int) -> dict:
    """Write one fund's self-evaluation outputs; return where they are and who gets them."""
    from budget_monitor.config import load_fund_config
    from budget_monitor.pipeline import run_year_end

    d = Path(fund_dir)
    cfg = load_fund_config(d)
    out = settings.reports_root() / cfg.code / str(year)
    out.mkdir(parents=True, exist_ok=True)
    result = run_year_end(d, year, out, settings.db_url(), None)  # mail is the next task's job
    files = sorted(str(p) for p in out.rglob("*") if p.is_file())
    log.info("%s %s: %s", cfg.code, year, result.summary() if hasattr(result, "summary") else result)
    return {"fund": cfg.code, "name": cfg.title, "year": year, "out_dir": str(out),
            "recipients": list(cfg.recipients), "files": files}


def email(report: dict) -> list[str]:
    """Mail the .docx report and the .xlsx score table to the fund's recipients."""
    from budget_monitor_airflow.mail import send_html

    attach = [f for f in report["files"] if f.endswith((".docx", ".xlsx"))]
    if not report["recipients"]:
        log.warning("%s has no recipients in fund.yaml; report not mailed", report["fund"])
        return []
    name, year = html.escape(report["name"]), report["year"]
    body = (f"<p>您好：</p><p>附件为{name} {year} 年度绩效自评报告（Word）及自评表（Excel），请查阅。</p>"
            f"<p>全部输出文件位于：{html.escape(report['out_dir'])}</p><p>（本邮件由预算执行监控系统自动发送）</p>")
    send_html(report["recipients"], f"【绩效自评】{report['name']} {year} 年度自评报告", body, attach)
    return [Path(f).name for f in attach]
