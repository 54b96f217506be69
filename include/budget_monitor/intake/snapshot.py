"""Write a pulled month as a CSV snapshot in the fund directory (shared by every pulling source).

``<fund_dir>/<stem>/pulled_<fund>_<month>.csv``: one file per fact kind and
month, so a second pull of the same month replaces the first (the loader
then loads it again only if its bytes changed, and a corrected row replaces
the stored one by its key, with an audit row).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from decimal import Decimal
from pathlib import Path

from budget_monitor import atomic
from budget_monitor.names import safe_name
from budget_monitor.paths import UnsafePath

from budget_monitor.kinds import data_kind


def snapshot_path(fund_dir: Path, kind: str, fund_code: str, month: str) -> Path:
    return Path(fund_dir) / data_kind(kind).stem / f"pulled_{fund_code}_{month}.csv"


def write_snapshot(
    fund_dir: Path,
    kind: str,
    fund_code: str,
    month: str,
    columns: Sequence[str],
    rows: Iterable[Mapping[str, object]],
) -> Path:
    """Write ``rows`` (``columns`` in that order) to the month's snapshot file; return its path.

    Atomic (a hidden temp, skipped by the lister, renamed into place): two
    pulls never share a temp and a failed one leaves nothing. When the file
    already holds exactly these bytes it is left alone.
    """
    out = snapshot_path(fund_dir, kind, fund_code, month)
    if out.parent.is_symlink():  # never write through a link out of the fund dir
        raise UnsafePath(f"{safe_name(out.parent.name)} 是符号链接，拒绝写入拉取的数据")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for r in rows:
        writer.writerow([cell_text(r.get(c)) for c in columns])
    data = buf.getvalue().encode("utf-8")
    if out.is_file() and not out.is_symlink() and out.read_bytes() == data:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_bytes(out, data)
    return out


def cell_text(value: object) -> str:
    """A value as the CSV cell the reader parses back: dates ISO, Decimals exact, None empty."""
    if value is None:
        return ""
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)
