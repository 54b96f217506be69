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
    from budget_monitor.config import load_fund_config
    from budget_monitor.pipeline import discover_funds, month_bounds

    month_bounds(month)  # a bad month fails here, before any mapping
    root = settings.funds_root()
    funds = discover_funds(root)
    if fund_filter:
        funds = [d for d in funds if fund_filter in (d.name, load_fund_config(d).code)]
    if not funds:
        raise FileNotFoundError(f"no fund directory (with fund.yaml) under {root} matching {fund_filter!r}")
    source = settings.source_url()
    if source:
        from budget_monitor.sources import SqlSource, pull_month

        for d in funds:
            pulled = pull_month(SqlSource(source), load_fund_config(d).code, month, d)
            log.info("pulled %d file(s) for %s from the SQL source", len(pulled), d.name)
    return [str(d) for d in funds]


def load_batch(fund_dirs: list[str], month: str) -> list[dict]:
    """Load every fund of the batch; a rejection does not stop the batch's other funds.

    Funds are batched per task because the Great Expectations import costs
    ~7 s per process: a task per fund would pay it once per fund.
    """
    from budget_monitor.config import load_fund_config
    from budget_monitor.pipeline import MonthRejected, load_month

    db = settings.db_url()
    done: list[dict] = []
    rejected: list[FundRejection] = []
    for d in map(Path, fund_dirs):
        cfg = load_fund_config(d)
        try:
            result = load_month(d, month, db, cfg=cfg)
        except MonthRejected as exc:
            result = exc.result
            log.error("%s %s: %s", cfg.code, month, exc.reason)
            rejected.append(FundRejection(
                fund_code=cfg.code, fund_name=cfg.title, month=month, recipients=list(cfg.recipients),
                quarantine_dir=str(d / "quarantine"),
                files=[{"name": f.name, "reason": f.reason} for f in result.rejected]))
        log.info("%s %s: %s; rows %s", cfg.code, month, result.summary(), result.counts)
        done.append({"fund": cfg.code, "summary": result.summary(), "counts": result.counts})
    if rejected:
        raise FilesRejected(rejected)
    return done


def close(fund_dirs: list[str], month: str) -> list[dict]:
    """Execution vs pace for each fund; alerts are queued in the outbox."""
    from budget_monitor.pipeline import close_month

    db = settings.db_url()
    out = []
    for d in map(Path, fund_dirs):
        result = close_month(d, month, db)
        summary = result.summary() if hasattr(result, "summary") else str(result)
        log.info("%s %s closed: %s", d.name, month, summary)
        out.append({"fund": d.name, "summary": summary})
    return out


def send_alerts() -> int:
    """Flush the outbox through SmtpHook; a failed send stays pending for the next flush."""
    from budget_monitor.pipeline import send_pending

    from budget_monitor_airflow.mail import SmtpHookMailer

    sent = send_pending(settings.db_url(), SmtpHookMailer())
    log.info("outbox flushed: %s message(s) sent", sent)
    return int(sent) if isinstance(sent, int) else sent
