"""Bodies of the monthly DAG's tasks: Airflow glue around budget_monitor.pipeline.

Every function imports the package inside, so parsing a DAG never pays for
pandas / Great Expectations.
"""

from __future__ import annotations

import logging
from pathlib import Path

from budget_monitor_airflow import settings
from budget_monitor_airflow.errors import FilesRejected, FundRejection

log = logging.getLogger(__name__)


def discover(month: str, fund_filter: str = "") -> list[str]:
    """Fund directories under the inbox root (optionally one), after pulling the
    month from the SQL source when the ``budget_monitor_source`` connection exists."""
    from budget_monitor.config import FundConfigError, load_fund_config
    from budget_monitor.pipeline import discover_funds, month_bounds

    first, _ = month_bounds(month)  # a bad month fails here, before any mapping
    root = settings.funds_root()
    funds = []
    for d in discover_funds(root):
        try:
            cfg = load_fund_config(d)
        except FundConfigError as exc:
            # Kept: its load task fails visibly with the reason; the other funds go on.
            log.error("%s", exc)
            if not fund_filter or fund_filter == d.name:
                funds.append(d)
            continue
        if fund_filter and fund_filter not in (d.name, cfg.code):
            continue
        if cfg.year != first.year:  # a fund-year directory only closes months of its year
            log.info("%s is the %s fund-year: not part of %s", d.name, cfg.year, month)
            continue
        funds.append(d)
    if not funds:
        raise FileNotFoundError(f"no {first.year} fund directory (with fund.yaml) under {root}"
                                f" matching {fund_filter!r}")
    source = settings.source_url()
    if source:
        from budget_monitor.sources import SqlSource, pull_month

        for d in funds:
            try:
                code = load_fund_config(d).code
            except FundConfigError:
                continue
            pulled = pull_month(SqlSource(source), code, month, d)
            log.info("pulled %d file(s) for %s from the SQL source", len(pulled), d.name)
    return [str(d) for d in funds]


def load_batch(fund_dirs: list[str], month: str) -> list[dict]:
    """Load every fund of the batch; a rejection does not stop the batch's other funds.

    Funds are batched per task because the Great Expectations import costs
    ~7 s per process: a task per fund would pay it once per fund.
    """
    from budget_monitor.config import FundConfigError, load_fund_config
    from budget_monitor.pipeline import MonthRejected, load_month
    from budget_monitor.quarantine import InputRejected

    db = settings.db_url()
    done: list[dict] = []
    rejected: list[FundRejection] = []
    for d in map(Path, fund_dirs):
        try:
            cfg = load_fund_config(d)
        except FundConfigError as exc:  # no recipients known: the notifier tells ops
            rejected.append(FundRejection(fund_code=d.name, fund_name=d.name, month=month, recipients=[],
                                          quarantine_dir="", files=[{"name": "fund.yaml", "reason": str(exc)}]))
            continue
        try:
            result = load_month(d, month, db, cfg=cfg)
        except MonthRejected as exc:
            result = exc.result
            log.error("%s %s: %s", cfg.code, month, exc.reason)
            rejected.append(FundRejection(
                fund_code=cfg.code, fund_name=cfg.title, month=month, recipients=list(cfg.recipients),
                quarantine_dir=str(d / "quarantine"),
                files=[{"name": f.name, "reason": f.reason} for f in result.rejected]))
        except InputRejected as exc:  # a single file, should load_month ever raise it directly
            log.error("%s %s: %s", cfg.code, month, exc.reason)
            rejected.append(FundRejection(
                fund_code=cfg.code, fund_name=cfg.title, month=month, recipients=list(cfg.recipients),
                quarantine_dir=str(d / "quarantine"),
                files=[{"name": getattr(exc.report, "file", "") or "", "reason": exc.reason}]))
            continue
        log.info("%s %s: %s; rows %s", cfg.code, month, result.summary(), result.counts)
        done.append({"fund": cfg.code, "summary": result.summary(), "counts": result.counts})
    if rejected:
        raise FilesRejected(rejected)
    return done


def close(fund_dirs: list[str], month: str) -> list[dict]:
    """Execution vs pace for each fund; alerts are queued in the outbox."""
    from budget_monitor.config import FundConfigError
    from budget_monitor.pipeline import close_month

    db = settings.db_url()
    out = []
    for d in map(Path, fund_dirs):
        try:
            r = close_month(d, month, db)
        except FundConfigError as exc:  # reported by its load task
            log.error("%s not closed: %s", d.name, exc)
            continue
        row = {"fund": r.fund_code, "rate": _text(r.rate), "pace": _text(r.pace), "gap": _text(r.gap),
               "severity": r.severity, "lagging_quarters": r.lagging_quarters,
               "units_behind": r.units_behind, "alerts": r.alerts, "new_alerts": r.new_alerts}
        log.info("%s %s closed: %s", d.name, month, row)
        out.append(row)
    return out


def _text(value) -> str | None:
    return None if value is None else str(value)  # Decimal -> exact text for XCom


def send_alerts(fund_code: str | None = None) -> int:
    """Flush the outbox through SmtpHook (exactly once per message).

    A failed send stays pending; the task then fails so Airflow retries the
    flush, and the next run's flush picks it up in any case.
    """
    from budget_monitor.pipeline import send_pending

    from budget_monitor_airflow.mail import SmtpHookMailer

    result = send_pending(settings.db_url(), SmtpHookMailer(), fund_code)
    log.info("outbox flushed: %d sent, %d failed", result.sent, result.failed)
    if result.failed:
        raise RuntimeError(f"{result.failed} mail(s) not sent, still pending: {'; '.join(result.errors)[:500]}")
    return result.sent
