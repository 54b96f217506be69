"""The monthly close and the year end: the functions the DAGs and the CLI both call.

A monthly close of fund-month (f, m) is three steps, each safe to re-run:

1. ``load_month``: every not-yet-loaded file of the fund directory whose rows
   are all dated on or before the end of m is read, validated and loaded
   atomically (one transaction per file). A bad file is moved to quarantine
   and reported; the run then fails with all reasons at once, after the good
   files landed. A file with rows after m waits for its month.
2. ``close_month``: execution vs pace per fund and unit, month and quarter;
   alerts are queued in the outbox (one per fund, unit, period and kind).
3. ``send_pending``: the outbox is flushed; a failed send stays pending and is
   retried by the next flush.
"""

from __future__ import annotations

import calendar
import logging
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from budget_monitor import store
from budget_monitor.config import FundConfig, load_fund_config
from budget_monitor.sources import FACT_KINDS, fund_files

log = logging.getLogger(__name__)

# Column that dates a row, per fact kind (a file waits until its last date's month closes).
DATE_COLUMN = {"payments": "pay_date", "inspections": "sample_date", "outputs": "month"}
LOAD_ORDER = ("goals", "budget", *FACT_KINDS)


def month_bounds(month: str) -> tuple[date, date]:
    """First and last day of 'YYYY-MM'."""
    try:
        year, mon = (int(p) for p in month.split("-"))
        last = calendar.monthrange(year, mon)[1]
        return date(year, mon, 1), date(year, mon, last)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"月份 {month!r} 应为 YYYY-MM 格式") from exc


def discover_funds(root: Path) -> list[Path]:
    """Fund directories (those holding a fund.yaml) under ``root``, in name order."""
    root = Path(root)
    if (root / "fund.yaml").is_file():
        return [root]
    return sorted(p.parent for p in root.glob("*/fund.yaml"))


@dataclass
class FileOutcome:
    kind: str
    name: str
    status: str  # loaded | skipped | deferred | rejected
    rows: int = 0
    replaced: int = 0
    reason: str = ""


@dataclass
class LoadResult:
    fund_code: str
    month: str
    files: list[FileOutcome] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def rejected(self) -> list[FileOutcome]:
        return [f for f in self.files if f.status == "rejected"]

    def summary(self) -> str:
        by: dict[str, int] = {}
        for f in self.files:
            by[f.status] = by.get(f.status, 0) + 1
        return ", ".join(f"{k}={v}" for k, v in sorted(by.items())) or "no files"


class MonthRejected(Exception):
    """One or more files of the month were rejected (already quarantined)."""

    def __init__(self, result: LoadResult) -> None:
        self.result = result
        reasons = [f.reason for f in result.rejected]
        super().__init__("；".join(reasons))

    @property
    def reason(self) -> str:
        return str(self)


def _records(df: Any, columns: list[str]) -> list[dict[str, Any]]:
    """DataFrame rows as plain Python values (int fen, date, str, None)."""
    import pandas as pd

    sub = df[[c for c in columns if c in df.columns]].astype(object)
    sub = sub.where(pd.notna(sub), None)
    return sub.to_dict("records")


def _store_columns(kind: str) -> list[str]:
    spec = store.FACTS[kind]
    return list(spec.key + spec.values)


def _max_month(table: Any, kind: str) -> str | None:
    col = DATE_COLUMN.get(kind)
    if col is None or table.df.empty or col not in table.df.columns:
        return None
    values = table.df[col].dropna()
    if values.empty:
        return None
    top = values.max()
    return top if isinstance(top, str) else f"{top.year:04d}-{top.month:02d}"


def load_month(
    fund_dir: Path,
    month: str,
    db_url: str | None = None,
    *,
    cfg: FundConfig | None = None,
    raise_on_reject: bool = True,
) -> LoadResult:
    """Step 1 of the monthly close: read, validate and load the fund's new files."""
    from budget_monitor import ingest, quarantine, validate

    fund_dir = Path(fund_dir)
    cfg = cfg or load_fund_config(fund_dir)
    month_bounds(month)
    engine = store.open_store(db_url)
    store.upsert_fund(engine, cfg.code, cfg.name, cfg.year, cfg.department)
    result = LoadResult(cfg.code, month)
    files = fund_files(fund_dir)
    qdir = fund_dir / "quarantine"
    for kind in LOAD_ORDER:
        for path in files.get(kind, []):
            rel = f"{path.parent.name}/{path.name}" if kind in FACT_KINDS else path.name
            sha = store.sha256_of(path)
            if store.is_loaded(engine, cfg.code, sha):
                result.files.append(FileOutcome(kind, rel, "skipped"))
                continue
            table = ingest.read_table(path, kind, display_name=rel)
            if table.ok and kind in FACT_KINDS:
                last = _max_month(table, kind)
                if last is not None and last > month:
                    result.files.append(FileOutcome(kind, rel, "deferred", len(table.df),
                                                    reason=f"含 {last} 的数据，待该月结账时处理"))
                    continue
            ctx = validate.context_from_store(engine, cfg)
            report = validate.validate_table(table, ctx)
            if not report.ok:
                moved = quarantine.quarantine(path, report, qdir)
                reason = report.first_reason()
                store.record_rejection(engine, fund_code=cfg.code, kind=kind, name=rel,
                                       sha256=sha, reason=reason, quarantine_path=str(moved))
                result.files.append(FileOutcome(kind, rel, "rejected", len(table.df),
                                                reason=reason))
                log.error("rejected %s: %s", rel, reason)
                continue
            archived = store.archive_file(path, cfg.code, sha)
            stats = store.load_rows(
                engine, fund_code=cfg.code, kind=kind, name=rel, sha256=sha,
                rows=_records(table.df, _store_columns(kind)), encoding=table.encoding,
                archive_path=str(archived))
            result.files.append(FileOutcome(kind, rel, "skipped" if stats.skipped else "loaded",
                                            len(table.df), stats.replaced))
            log.info("loaded %s: %d rows (%d replaced)", rel, len(table.df), stats.replaced)
    result.counts = store.table_counts(engine, cfg.code)
    if result.rejected and raise_on_reject:
        raise MonthRejected(result)
    return result
