"""Where a fund's tables come from: files in the fund directory, or a SQL database.

Pulling from SQL writes the month's rows to a CSV file in the fund directory
(``<kind>/pulled_<fund>_<month>.csv``) and from there the file path is the
only path: the pulled snapshot is validated, archived by sha256 and loaded
exactly like a dropped file, and pulling the same rows twice gives the same
bytes, so the second pull changes nothing.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from sqlalchemy import MetaData, Table, create_engine, select

from budget_monitor.store import normalise_url

FACT_KINDS = ("payments", "inspections", "outputs")
SNAPSHOT_FILES = ("goals", "budget")
SUFFIXES = (".csv", ".xlsx")


def fund_files(fund_dir: Path) -> dict[str, list[Path]]:
    """The input files of a fund directory by kind, in name order."""
    found: dict[str, list[Path]] = {}
    for kind in SNAPSHOT_FILES:
        hits = [p for p in (fund_dir / f"{kind}{s}" for s in SUFFIXES) if p.is_file()]
        found[kind] = hits[:1]
    for kind in FACT_KINDS:
        folder = fund_dir / kind
        found[kind] = sorted(
            (p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES
             and not p.name.startswith((".", "~$"))),
            key=lambda p: p.name,
        ) if folder.is_dir() else []
    return found


@dataclass(frozen=True)
class SqlSource:
    """A source database with one table per kind, columns named as the contract's aliases
    (voucher_no, unit, doc_no, amount, pay_date, ...) plus ``fund_code``."""

    url: str
    tables: dict[str, str] = field(default_factory=lambda: {
        "payments": "payments", "inspections": "inspections", "outputs": "outputs"})
    # Column that places a row in a month (dates, or 'YYYY-MM' text for outputs).
    date_columns: dict[str, str] = field(default_factory=lambda: {
        "payments": "pay_date", "inspections": "sample_date", "outputs": "month"})


def pull_month(source: SqlSource, fund_code: str, month: str, fund_dir: Path) -> list[Path]:
    """Write the month's rows of each kind to CSV files in ``fund_dir``; return them."""
    from budget_monitor.pipeline import month_bounds

    first, last = month_bounds(month)
    engine = create_engine(normalise_url(source.url))
    written: list[Path] = []
    try:
        md = MetaData()
        with engine.connect() as conn:
            for kind in FACT_KINDS:
                name = source.tables.get(kind)
                if not name:
                    continue
                table = Table(name, md, autoload_with=conn)
                col = table.c[source.date_columns[kind]]
                stmt = select(table).where(table.c.fund_code == fund_code)
                if kind == "outputs":
                    stmt = stmt.where(col == month)
                else:
                    stmt = stmt.where(col >= first, col <= last)
                keys = [c.name for c in table.columns if c.name != "fund_code"]
                # Every column in the ORDER BY: the same rows always give the same bytes.
                stmt = stmt.order_by(*[table.c[k] for k in keys])
                rows = conn.execute(stmt).mappings().all()
                if not rows:
                    continue
                out = fund_dir / kind / f"pulled_{fund_code}_{month}.csv"
                out.parent.mkdir(parents=True, exist_ok=True)
                tmp = out.with_suffix(".part")
                with tmp.open("w", encoding="utf-8", newline="") as fh:
                    writer = csv.writer(fh, lineterminator="\n")
                    writer.writerow(keys)
                    for r in rows:
                        writer.writerow([_text(r[k]) for k in keys])
                tmp.replace(out)
                written.append(out)
    finally:
        engine.dispose()
    return written


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, date):
        return value.isoformat()
    return str(value)
