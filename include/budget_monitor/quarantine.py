"""Move a rejected input file into quarantine with a machine-readable report.

The quarantined name is ``<YYYYmmddTHHMMSS>_<sha256[:8]>_<original name>``
(Asia/Shanghai time), so two rejections never collide and the same bytes are
recognisable; ``<that name>.report.json`` sits beside it.

The name part is shown safely (control and bidi characters escaped, see
:mod:`names`) and cut by bytes, keeping its extension, so that every name
created here, ``.report.json`` included, fits NAME_MAX (255 bytes); the
report keeps the original path. The quarantine directory and what is put in
it are owner-only (see :mod:`paths`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
from datetime import datetime
from pathlib import Path
from typing import Any

from .names import NAME_MAX, fit_name, safe_name
from . import atomic
from .paths import UnsafePath, file_mode, private_dir
from .periods import TZ
from .validate import Failure, ValidationReport

REPORT_SUFFIX = ".report.json"
# Room kept for a ".tmp" after the report name, as earlier versions wrote it.
_TMP_ROOM = len(".tmp")
# The rule a refused directory entry (symlink, FIFO...) is reported under;
# its row in rules/validation_rules.csv is the lead's (validate.py owns the table).
UNSAFE_ENTRY_RULE = "ING-006"


class InputRejected(ValueError):
    """A file failed validation; ``reason`` is one Chinese line naming file,
    row, column and rule; ``report`` is the full ValidationReport;
    ``quarantined`` is where the file went (None when not moved)."""

    def __init__(self, report: ValidationReport, quarantined: Path | None = None) -> None:
        self.report = report
        self.reason = report.first_reason()
        self.quarantined = quarantined
        super().__init__(self.reason)


def quarantined_name(original: str, stamp: str, sha8: str, n: int = 1) -> str:
    """``<stamp>_<sha8>_[<n>_]<original>``, ``original`` escaped and cut so that
    the name plus ``.report.json.tmp`` is at most NAME_MAX bytes."""
    prefix = f"{stamp}_{sha8}_" + (f"{n}_" if n > 1 else "")
    room = NAME_MAX - len(prefix.encode("utf-8")) - len(REPORT_SUFFIX) - _TMP_ROOM
    return prefix + fit_name(safe_name(original), room)


def quarantine(path: Path, report: ValidationReport, quarantine_dir: Path, *, now: datetime | None = None) -> Path:
    """Move ``path`` into ``quarantine_dir``; write ``<name>.report.json``.

    Returns the new path of the file. The report is written first (to a temp
    name, then renamed) so a crash never leaves a quarantined file without
    its reason. ``path`` is moved as it is: a symlink or FIFO moves itself,
    its target is never opened.
    """
    path = Path(path)
    body = {**report.to_dict(), "original_path": str(path)}
    target = _place(path.name, report.sha256, body, quarantine_dir, now)
    shutil.move(str(path), str(target))
    _owner_only(target)
    return target


def quarantine_bytes(
    data: bytes, name: str, body: dict[str, Any], quarantine_dir: Path, *, now: datetime | None = None
) -> Path:
    """Keep ``data`` that never became an input file (a source's response that
    broke its contract) in quarantine as ``name``, with ``body`` (``file``,
    ``kind``, ``reason``...) as its report: listed on the quarantine page like
    a rejected file, for ops to look at. Returns where the data went."""
    sha = hashlib.sha256(data).hexdigest()
    target = _place(name, sha, {**body, "sha256": sha}, quarantine_dir, now)
    atomic.write_bytes(target, data, mode=file_mode())
    return target


def _place(name: str, sha256: str | None, body: dict[str, Any], quarantine_dir: Path, now: datetime | None) -> Path:
    """A free quarantined name for ``name``, its report already written beside it."""
    qdir = _quarantine_dir(Path(quarantine_dir))
    now = (now or datetime.now(TZ)).astimezone(TZ)
    stamp, sha8 = f"{now:%Y%m%dT%H%M%S}", (sha256 or "nohash")[:8]
    n = 1
    target = qdir / quarantined_name(name, stamp, sha8)
    while os.path.lexists(target) or os.path.lexists(target.with_name(target.name + REPORT_SUFFIX)):
        n += 1
        target = qdir / quarantined_name(name, stamp, sha8, n)
    body = {**body, "quarantined_as": target.name, "rejected_at": now.isoformat(timespec="seconds")}
    report_path = target.with_name(target.name + REPORT_SUFFIX)
    atomic.write_text(report_path, json.dumps(body, ensure_ascii=False, indent=2, default=str), mode=file_mode())
    return target


def quarantine_unsafe(
    kind: str,
    path: Path,
    reason: str,
    quarantine_dir: Path,
    *,
    fund_dir: Path | None = None,
    rule_id: str = UNSAFE_ENTRY_RULE,
    now: datetime | None = None,
) -> tuple[Path, ValidationReport]:
    """Quarantine an entry :func:`sources.unsafe_entries` refused (a symlink, a
    FIFO...) without ever reading it: the entry itself is moved (a link stays
    a link, its target untouched), so the next run does not report it again.

    Returns the new path and the report (no rows), ready for
    ``store.record_rejection`` and ``alerts.build_rejection_email``. Its
    ``sha256`` is the digest of the entry's identity (``unsafe:<relative
    path>-><link target>``), not of any content: nothing is read, yet two
    different refused entries get different notice keys.
    """
    path = Path(path)
    rel = path.relative_to(fund_dir).as_posix() if fund_dir is not None else path.name
    link = os.readlink(path) if path.is_symlink() else ""
    identity = hashlib.sha256(f"unsafe:{rel}->{link}".encode("utf-8", "surrogateescape")).hexdigest()
    failure = Failure(rule_id, "fatal", "文件", None, None, None, None, f"{reason}（规则 {rule_id}）")
    report = ValidationReport(safe_name(rel), str(path), kind, identity, 0, [failure], [], {rule_id: 1}, [])
    return quarantine(path, report, quarantine_dir, now=now), report


def reject(path: Path, report: ValidationReport, quarantine_dir: Path) -> InputRejected:
    """Quarantine the file and return the exception to raise."""
    return InputRejected(report, quarantine(path, report, quarantine_dir))


def _quarantine_dir(qdir: Path) -> Path:
    # A quarantine folder that is a link (the fund directory is writable by
    # whoever drops files) would move rejected files wherever it points.
    if qdir.is_symlink():
        raise UnsafePath(f"{safe_name(str(qdir))} 是符号链接，拒绝把被退回的文件移入其中")
    return private_dir(qdir)


def _owner_only(target: Path) -> None:
    """Owner-only mode on a moved regular file (a link or FIFO keeps its own:
    chmod would follow the link). A file owned by someone else keeps its
    mode: the owner-only quarantine directory already closes it."""
    try:
        if stat.S_ISREG(os.lstat(target).st_mode):
            os.chmod(target, file_mode())
    except PermissionError:
        pass
