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
    """Write one fund's year-end report as a draft (marked 草稿, never mailed) for
    the approver. Refused (YearNotReady) until December is closed."""
    import hashlib

    from budget_monitor import store
    from budget_monitor.config import load_fund_config
    from budget_monitor.money_fmt import plain_number
    from budget_monitor.paths import contained, private_dir
    from budget_monitor.pipeline import check_year_closed, run_year_end

    d = Path(fund_dir)
    cfg = load_fund_config(d)
    check_year_closed(store.open_store(settings.db_url()), cfg)
    # contained(): a fund code can never lead outside the reports root.
    out = private_dir(contained(settings.reports_root(), cfg.code, str(year)))
    result = run_year_end(d, year, out, settings.db_url(), None, draft=True)
    log.info("%s (draft, waiting for approval)", result.summary())
    json_path = next(p for p in result.paths if p.suffix == ".json")
    return {
        "fund": cfg.code,
        "fund_name": cfg.name,
        "fund_dir": str(d),
        "year": year,
        "out_dir": str(out),
        "files": sorted(str(p) for p in result.paths),
        "total_score": result.total_score,
        "total_score_text": f"{plain_number(result.total_score)}分",
        "grade": result.grade,
        "draft_sha256": hashlib.sha256(json_path.read_bytes()).hexdigest(),
    }


def email(report: dict) -> int:
    """Send the fund's queued report mail (.docx report and .xlsx score table
    attached); nothing for a draft that was sent back."""
    from airflow.sdk.exceptions import AirflowSkipException

    from budget_monitor_airflow.monthly import send_alerts

    if not report.get("approved"):
        raise AirflowSkipException(f"{report.get('fund', '')}: the draft was not approved: nothing to send")
    return send_alerts(report["fund"])
