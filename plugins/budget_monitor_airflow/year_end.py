"""Bodies of the year-end DAG's tasks: Airflow glue around budget_monitor.pipeline."""

from __future__ import annotations

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


def fund_dirs(year: int, fund_filter: str = "") -> list[str]:
    """The fund-year directories of ``year`` (optionally only one fund)."""
    from budget_monitor.config import FundConfigError, load_fund_config
    from budget_monitor.pipeline import discover_funds

    out = []
    for d in discover_funds(settings.funds_root()):
        try:
            cfg = load_fund_config(d)
        except FundConfigError as exc:  # the monthly DAG reports it; other funds go on
            log.error("%s", exc)
            continue
        if cfg.year == year and (not fund_filter or fund_filter in (d.name, cfg.code)):
            out.append(str(d))
    if not out:
        log.warning("no %s fund directory under %s matching %r", year, settings.funds_root(), fund_filter)
    return out


def build(fund_dir: str, year: int) -> dict:
    """Write one fund's self-evaluation outputs; the report mail is queued in the outbox."""
    from budget_monitor.config import load_fund_config
    from budget_monitor.pipeline import run_year_end

    d = Path(fund_dir)
    cfg = load_fund_config(d)
    from budget_monitor.paths import contained, private_dir

    # contained(): a fund code can never lead outside the reports root.
    out = private_dir(contained(settings.reports_root(), cfg.code, str(year)))
    result = run_year_end(d, year, out, settings.db_url(), None)  # sending is email_report's job
    log.info("%s", result.summary())
    return {
        "fund": cfg.code,
        "year": year,
        "out_dir": str(out),
        "queued": result.queued,
        "files": sorted(str(p) for p in result.paths),
        "total_score": result.total_score,
        "grade": result.grade,
    }


def email(report: dict) -> int:
    """Send the fund's queued report mail (.docx report and .xlsx score table attached)."""
    from budget_monitor_airflow.monthly import send_alerts

    return send_alerts(report["fund"])
