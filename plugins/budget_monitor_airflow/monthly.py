"""Bodies of the monthly DAG's tasks: Airflow glue around budget_monitor.pipeline.

Every function imports the package inside, so parsing a DAG never pays for
pandas / Great Expectations.
"""

from __future__ import annotations

import logging
from pathlib import Path

from budget_monitor_airflow import settings
from budget_monitor_airflow.errors import FilesRejected, FundFailure, FundRejection, FundsFailed

log = logging.getLogger(__name__)


def discover(month: str, fund_filter: str = "") -> list[str]:
    """Fund directories under the inbox root (optionally one) whose fund-year is the month's.

    Nothing is pulled here: each fund's source is pulled by ``pull_funds``
    (:func:`pull_batch`), a mapped step of its own."""
    from budget_monitor.config import FundConfigError, load_fund_config
    from budget_monitor.periods import month_bounds
    from budget_monitor.pipeline import discover_funds

    from airflow.sdk.exceptions import AirflowFailException

    first, _ = month_bounds(month)  # a bad month fails here, before any mapping
    root = settings.funds_root()
    if not Path(root).is_dir():  # a deployment error (mount missing), not an empty month: no retry
        raise AirflowFailException(f"the fund inbox {root} (BUDGET_MONITOR_FUNDS_DIR) is not a directory")
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
    if not funds and fund_filter:
        # Someone asked for this fund: say so, without retries that would hold
        # later runs (max_active_runs=1) in the queue.
        raise AirflowFailException(
            f"no {first.year} fund directory (with fund.yaml) under {root} matching {fund_filter!r}"
        )
    if not funds:
        # A scheduled run in a year whose funds are not in the inbox yet (or
        # any more) has nothing to do: that is not a failure.
        log.warning("nothing to close for %s: no %s fund directory (with fund.yaml) under %s", month, first.year, root)
        return []
    return [str(d) for d in funds]


# The XCom key under which each pull_funds task keeps the funds it made ready,
# pushed before it fails, so that pulled_funds knows them whatever the task's state.
READY_KEY = "ready"


def pull_batch(fund_dirs: list[str], month: str) -> list[str]:
    """Pull the month of each fund of the batch from its source; return the funds ready to load.

    The source is fund.yaml's ``source``; a fund without one gets the SQL
    source when the ``budget_monitor_source`` connection exists (as before),
    else nothing is pulled (its files are dropped). Secrets come from the
    Airflow connection a source names (``settings.source_endpoint``).

    A fund whose source fails is left out of the ready list, the batch's
    other funds go on, and the task fails at the end naming every such fund
    (``FundsFailed``: retried, then ops is told). The ready list is pushed
    (``READY_KEY``) before that, so the other funds still load and close.
    """
    from budget_monitor.config import SqlSourceSettings
    from budget_monitor.intake.registry import pull_funds

    from airflow.sdk import get_current_context

    default = SqlSourceSettings(kind="sql") if settings.source_url() else None
    ready: list[str] = []
    failed: list[FundFailure] = []
    for p in pull_funds([Path(d) for d in fund_dirs], month, settings.source_endpoint, default):
        if p.error is None:
            ready.append(str(p.fund_dir))
            continue
        log.error("%s %s: pull failed; not loaded or closed in this run: %s", p.code, month, p.error)
        failed.append(FundFailure(fund=p.code, error=f"{type(p.error).__name__}: {p.error}"[:500]))
    get_current_context()["ti"].xcom_push(key=READY_KEY, value=ready)
    if failed:
        raise FundsFailed(failed)
    return ready


def ready_batches(month: str | None, batches: list[list[str]] | None) -> list[list[str]]:
    """``discover_funds``' batches less the funds whose pull failed: what is loaded and closed.

    Runs ``all_done`` after every ``pull_funds`` task: a fund whose source
    failed must not stop the others, nor be closed on a month it lacks (its
    alerts would be false). A batch whose pull task left no ready list (it
    never ran to its end) is held back whole. When discovery did not finish
    it fails at once (no retry), so the batch tasks are never expanded
    (upstream_failed) and the reason stays in discovery's log.
    """
    from airflow.sdk import get_current_context
    from airflow.sdk.exceptions import AirflowFailException

    if month is None or batches is None:
        raise AirflowFailException("nothing to load: plan_month or discover_funds did not finish (see that task's log)")
    if not batches:
        return []
    ti = get_current_context()["ti"]
    pushed = ti.xcom_pull(task_ids="pull_funds", key=READY_KEY, map_indexes=list(range(len(batches))))
    out = []
    for batch, ready in zip(batches, pushed, strict=True):
        keep = set(ready or [])
        held = [Path(d).name for d in batch if d not in keep]
        if held:
            log.error("%s: held back from loading and closing %s (their pull failed)", ", ".join(held), month)
        if keep:
            out.append([d for d in batch if d in keep])
    return out


def load_batch(fund_dirs: list[str], month: str) -> list[dict]:
    """Load every fund of the batch; no fund's failure stops the batch's other funds.

    Funds are batched per task because the Great Expectations import costs
    ~7 s per process: a task per fund would pay it once per fund; and within
    the batch the funds' small files are validated together
    (``pipeline.load_months``), paying GX's fixed cost per run once. So one
    fund's problem must not cost the others their load: a rejected file or
    an unexpected error (store constraint, bug) is recorded, the next fund is
    loaded, and the task fails at the end naming every fund that did not load:

    - any rejection: ``FilesRejected`` (no retry, see its docstring), carrying
      the technical failures too;
    - technical failures only: ``FundsFailed``, retried by Airflow (the funds
      already loaded skip their files by content hash).
    """
    from budget_monitor.config import FundConfigError
    from budget_monitor.pipeline import load_months

    done: list[dict] = []
    rejected: list[FundRejection] = []
    failed: list[FundFailure] = []
    # One call for the batch: the funds' small files are validated together.
    for load in load_months([Path(d) for d in fund_dirs], month, settings.db_url()):
        d, cfg, result, exc = load.fund_dir, load.cfg, load.result, load.error
        if isinstance(exc, FundConfigError):  # no recipients known: the notifier tells ops
            rejected.append(
                FundRejection(
                    fund_code=d.name,
                    fund_name=d.name,
                    month=month,
                    recipients=[],
                    quarantine_dir="",
                    files=[{"name": "fund.yaml", "reason": str(exc)}],
                )
            )
            continue
        if exc is not None:
            log.error(
                "%s %s: load failed; the batch's other funds went on",
                d.name,
                month,
                exc_info=(type(exc), exc, exc.__traceback__),
            )
            failed.append(FundFailure(fund=d.name, error=f"{type(exc).__name__}: {exc}"[:500]))
            continue
        assert cfg is not None and result is not None
        if result.rejected:  # the good files of the month landed
            log.error("%s %s: %s", cfg.code, month, "；".join(f.reason for f in result.rejected))
            rejected.append(
                FundRejection(
                    fund_code=cfg.code,
                    fund_name=cfg.title,
                    month=month,
                    recipients=list(cfg.recipients),
                    quarantine_dir=str(d / "quarantine"),
                    files=[{"name": f.name, "reason": f.reason} for f in result.rejected],
                )
            )
        log.info("%s %s: %s; rows %s", cfg.code, month, result.summary(), result.counts)
        done.append({"fund": cfg.code, "summary": result.summary(), "counts": result.counts})
    if rejected:
        raise FilesRejected(rejected, failed)
    if failed:
        raise FundsFailed(failed)
    return done


def close(fund_dirs: list[str], month: str) -> list[dict]:
    """Execution vs pace for each fund of a batch; alerts are queued in the outbox.

    The body of the mapped ``close_funds`` task: one batch, closed in this
    process (the executor spreads the batches over its slots). As in
    ``load_batch``, a fund that fails does not stop the others; the task fails
    at the end naming every fund not closed (retried, then ops is told). A
    fund whose fund.yaml cannot be read is not closed and not counted as a
    failure: its load task already failed with the reason.
    """
    from budget_monitor.config import FundConfigError
    from budget_monitor.pipeline import close_months

    log.info("closing %d funds for %s", len(fund_dirs), month)
    out = []
    failed: list[FundFailure] = []
    for c in close_months(list(map(Path, fund_dirs)), month, settings.db_url()):
        name, exc = c.fund_dir.name, c.error
        if isinstance(exc, FundConfigError):  # reported by its load task
            log.error("%s not closed: %s", name, exc)
            continue
        if exc is not None:  # as in load_batch: the other funds still closed
            log.error(
                "%s %s: close failed; went on with the other funds",
                name,
                month,
                exc_info=(type(exc), exc, exc.__traceback__),
            )
            failed.append(FundFailure(fund=name, error=f"{type(exc).__name__}: {exc}"[:500]))
            continue
        r = c.result
        assert r is not None
        row = {
            "fund": r.fund_code,
            "rate": _text(r.rate),
            "pace": _text(r.pace),
            "gap": _text(r.gap),
            "severity": r.severity,
            "lagging_quarters": r.lagging_quarters,
            "units_behind": r.units_behind,
            "alerts": r.alerts,
            "new_alerts": r.new_alerts,
        }
        log.info("%s %s closed: %s", name, month, row)
        out.append(row)
    if failed:
        raise FundsFailed(failed)
    return out


def build_docs(fund_dirs: list[str]) -> int:
    """Render each fund's Data Docs from the validation results its load
    recorded (``<fund>/data_docs/``, see budget_monitor.validation.docs);
    returns the number of funds rendered.

    The body of the mapped ``build_data_docs`` task, after the batch's load
    whatever its outcome: a rejection is exactly when the page is read. One
    fund's failure does not stop the others; the task fails at the end
    naming them (retried, then ops is told)."""
    from budget_monitor.validation.docs import build_site

    done = 0
    failed: list[FundFailure] = []
    for d in map(Path, fund_dirs):
        try:
            build_site(d)
        except Exception as exc:  # noqa: BLE001 - one fund's failure must not stop the others
            log.error("%s: data docs not built", d.name, exc_info=(type(exc), exc, exc.__traceback__))
            failed.append(FundFailure(fund=d.name, error=f"{type(exc).__name__}: {exc}"[:500]))
            continue
        done += 1
    log.info("data docs built for %d of %d funds", done, len(fund_dirs))
    if failed:
        raise FundsFailed(failed)
    return done


def _text(value) -> str | None:
    return None if value is None else str(value)  # Decimal -> exact text for XCom


def gather(month: str | None) -> int:
    """Queue the month's digests (one per recipient) from the alerts the closes held.

    Runs ``all_done`` after every batch's close: a fund whose close failed
    has held nothing, and its alerts go out in a supplement once it closes.
    """
    from airflow.sdk.exceptions import AirflowFailException
    from budget_monitor.pipeline import gather_digests

    if month is None:
        raise AirflowFailException("no month: plan_month did not finish (see that task's log)")
    queued = gather_digests(month, settings.db_url())
    log.info("%s: %d digest(s) queued", month, queued)
    return queued


def send_alerts(fund_code: str | None = None) -> int:
    """Flush the outbox through SmtpHook (exactly once per message).

    A failed send stays pending; the task then fails so Airflow retries the
    flush, and the next run's flush picks it up in any case.
    """
    from budget_monitor.pipeline import send_pending

    from budget_monitor_airflow.mail import SmtpHookMailer

    with SmtpHookMailer() as mailer:
        result = send_pending(settings.db_url(), mailer, fund_code, deadline_s=settings.flush_deadline_s())
    log.info("outbox flushed: %d sent, %d failed, %d still pending", result.sent, result.failed, result.remaining)
    if result.failed or result.remaining:
        # Airflow retries the task; whatever is pending goes out with the next flush in any case.
        raise RuntimeError(f"{result.summary()} {'; '.join(result.errors)[:500]}")
    return result.sent
