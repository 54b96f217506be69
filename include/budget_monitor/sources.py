"""Where a fund's tables come from: files in the fund directory, or a SQL database.

Pulling from SQL writes the month's rows to a CSV file in the fund directory
(``<kind>/pulled_<fund>_<month>.csv``) and from there the file path is the
only path: the pulled snapshot is validated, archived by sha256 and loaded
exactly like a dropped file, and pulling the same rows twice gives the same
bytes, so the second pull changes nothing.
"""

from __future__ import annotations

import csv
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import NamedTuple

from sqlalchemy import MetaData, Table, create_engine, select

from budget_monitor.names import safe_name
from budget_monitor.paths import UnsafePath
from budget_monitor import atomic
from budget_monitor.store import normalise_url

FACT_KINDS = ("payments", "inspections", "outputs")
SNAPSHOT_FILES = ("goals", "budget")
SUFFIXES = (".csv", ".xlsx")


class UnsafeEntry(NamedTuple):
    """An entry of the fund directory that is never read: ``reason`` is one
    Chinese line for the finance office, naming the entry (escaped)."""

    kind: str
    path: Path
    reason: str


def fund_files(fund_dir: Path) -> dict[str, list[Path]]:
    """The input files of a fund directory by kind, in name order.

    Only regular files found without following a symlink: a link (to a file
    or to a kind folder, pointing outside the fund directory or not), a FIFO
    (whose read would block), a socket or a device is left out and listed by
    :func:`unsafe_entries` instead. Every symlink is refused, even one that
    stays inside: deciding "inside" means trusting the link target at the
    moment of the check, and a link is never needed to drop a file.
    """
    fund_dir = Path(fund_dir)
    found: dict[str, list[Path]] = {}
    for kind in SNAPSHOT_FILES:
        first = _snapshot_candidate(fund_dir, kind)
        found[kind] = [first] if first is not None and _mode(first, stat.S_ISREG) else []
    for kind in FACT_KINDS:
        folder = fund_dir / kind
        found[kind] = (
            sorted(
                (p for p in _fact_candidates(folder) if _mode(p, stat.S_ISREG)),
                key=lambda p: p.name,
            )
            if _mode(folder, stat.S_ISDIR)
            else []
        )
    return found


def unsafe_entries(fund_dir: Path) -> list[UnsafeEntry]:
    """The entries :func:`fund_files` leaves out because reading them is unsafe,
    as (kind, path, one-line Chinese reason), e.g. ``payments/x.csv 是指向资金
    目录之外的符号链接，已拒绝读取``. Entries that are not inputs anyway (other
    suffixes, hidden and Office lock files) are not listed."""
    fund_dir = Path(fund_dir)
    out: list[UnsafeEntry] = []
    for kind in SNAPSHOT_FILES:
        first = _snapshot_candidate(fund_dir, kind)
        if first is not None and not _mode(first, stat.S_ISREG):
            out.append(UnsafeEntry(kind, first, _reason(fund_dir, first, folder=False)))
    for kind in FACT_KINDS:
        folder = fund_dir / kind
        if folder.is_symlink():
            out.append(UnsafeEntry(kind, folder, _reason(fund_dir, folder, folder=True)))
            continue
        if not _mode(folder, stat.S_ISDIR):
            continue
        for p in sorted(_fact_candidates(folder), key=lambda p: p.name):
            if not _mode(p, stat.S_ISREG):
                out.append(UnsafeEntry(kind, p, _reason(fund_dir, p, folder=False)))
    return out


def _mode(path: Path, test: Callable[[int], bool]) -> bool:
    """``test`` on the entry itself (lstat: a symlink is never followed)."""
    try:
        return test(os.lstat(path).st_mode)
    except OSError:
        return False


def _snapshot_candidate(fund_dir: Path, kind: str) -> Path | None:
    # The first name that exists at all: a refused budget.csv must not let a
    # stale budget.xlsx load in its place.
    return next((p for p in (fund_dir / f"{kind}{s}" for s in SUFFIXES) if os.path.lexists(p)), None)


def _fact_candidates(folder: Path) -> Iterator[Path]:
    with os.scandir(folder) as it:
        for entry in it:
            p = Path(entry.path)
            if p.suffix.lower() in SUFFIXES and not p.name.startswith((".", "~$")):
                yield p


_NOT_REGULAR = (
    (stat.S_ISDIR, "文件夹"),
    (stat.S_ISFIFO, "命名管道"),
    (stat.S_ISSOCK, "套接字"),
    (stat.S_ISCHR, "设备文件"),
    (stat.S_ISBLK, "设备文件"),
)


def _reason(fund_dir: Path, path: Path, *, folder: bool) -> str:
    rel = safe_name(path.relative_to(fund_dir).as_posix())
    what = "该文件夹" if folder else ""
    if path.is_symlink():
        if not os.path.exists(path):
            return f"{rel} 是符号链接（目标不存在），已拒绝读取{what}"
        target = Path(os.path.realpath(path))
        if not target.is_relative_to(Path(os.path.realpath(fund_dir))):
            return f"{rel} 是指向资金目录之外的符号链接，已拒绝读取{what}"
        put = "文件夹本身" if folder else "文件本身"
        return f"{rel} 是符号链接，已拒绝读取{what}（请放入{put}，不要放链接）"
    kind = next((name for test, name in _NOT_REGULAR if _mode(path, test)), "特殊文件")
    return f"{rel} 不是普通文件（{kind}），已拒绝读取"


@dataclass(frozen=True)
class SqlSource:
    """A source database with one table per kind, columns named as the contract's aliases
    (voucher_no, unit, doc_no, amount, pay_date, ...) plus ``fund_code``."""

    url: str
    tables: dict[str, str] = field(
        default_factory=lambda: {"payments": "payments", "inspections": "inspections", "outputs": "outputs"}
    )
    # Column that places a row in a month (dates, or 'YYYY-MM' text for outputs).
    date_columns: dict[str, str] = field(
        default_factory=lambda: {"payments": "pay_date", "inspections": "sample_date", "outputs": "month"}
    )


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
                if out.parent.is_symlink():  # never write through a link out of the fund dir
                    raise UnsafePath(f"{safe_name(kind)} 是符号链接，拒绝写入拉取的数据")
                out.parent.mkdir(parents=True, exist_ok=True)
                # Atomic (a hidden temp, skipped by fund_files, renamed into place):
                # two pulls never share a temp and a failed one leaves nothing.
                with atomic.atomic_path(out) as tmp, tmp.open("w", encoding="utf-8", newline="") as fh:
                    writer = csv.writer(fh, lineterminator="\n")
                    writer.writerow(keys)
                    for r in rows:
                        writer.writerow([_text(r[k]) for k in keys])
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
