"""Move a rejected input file into quarantine with a machine-readable report.

The quarantined name is ``<YYYYmmddTHHMMSS>_<sha256[:8]>_<original name>``
(Asia/Shanghai time), so two rejections never collide and the same bytes are
recognisable; ``<that name>.report.json`` sits beside it.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from .validate import ValidationReport

TZ = ZoneInfo("Asia/Shanghai")


class InputRejected(ValueError):
    """A file failed validation; ``reason`` is one Chinese line naming file,
    row, column and rule; ``report`` is the full ValidationReport;
    ``quarantined`` is where the file went (None when not moved)."""

    def __init__(self, report: ValidationReport, quarantined: Path | None = None) -> None:
        self.report = report
        self.reason = report.first_reason()
        self.quarantined = quarantined
        super().__init__(self.reason)


def quarantine(path: Path, report: ValidationReport, quarantine_dir: Path, *, now: datetime | None = None) -> Path:
    """Move ``path`` into ``quarantine_dir``; write ``<name>.report.json``.

    Returns the new path of the file. The report is written first (to a temp
    name, then renamed) so a crash never leaves a quarantined file without
    its reason.
    """
    path = Path(path)
    quarantine_dir = Path(quarantine_dir)
    quarantine_dir.mkdir(parents=True, exist_ok=True)
    now = (now or datetime.now(TZ)).astimezone(TZ)
    stem = f"{now:%Y%m%dT%H%M%S}_{(report.sha256 or 'nohash')[:8]}_{path.name}"
    target = quarantine_dir / stem
    n = 1
    while target.exists() or target.with_name(target.name + ".report.json").exists():
        n += 1
        target = quarantine_dir / f"{now:%Y%m%dT%H%M%S}_{(report.sha256 or 'nohash')[:8]}_{n}_{path.name}"
    body = report.to_dict()
    body.update(
        {
            "original_path": str(path),
            "quarantined_as": target.name,
            "rejected_at": now.isoformat(timespec="seconds"),
        }
    )
    report_path = target.with_name(target.name + ".report.json")
    tmp = report_path.with_name(report_path.name + ".tmp")
    tmp.write_text(json.dumps(body, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
    os.replace(tmp, report_path)
    shutil.move(str(path), str(target))
    return target


def reject(path: Path, report: ValidationReport, quarantine_dir: Path) -> InputRejected:
    """Quarantine the file and return the exception to raise."""
    return InputRejected(report, quarantine(path, report, quarantine_dir))
