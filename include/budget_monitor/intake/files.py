"""The file drop: the finance office puts the fund's files into its fund directory.

:func:`fund_files` lists the input files by kind (the kinds table says which
kind is one file and which a folder); :func:`unsafe_entries` lists what is
never read (symlinks, FIFOs, devices), each with a Chinese reason.
:class:`FileDrop` is the source that pulls nothing: the files are already
there.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from budget_monitor.names import safe_name

from .base import Pulled, Resolver
from budget_monitor.kinds import KINDS, SUFFIXES


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
    for kind in KINDS:
        if kind.snapshot:
            first = _snapshot_candidate(fund_dir, kind.stem)
            found[kind.name] = [first] if first is not None and _mode(first, stat.S_ISREG) else []
            continue
        folder = fund_dir / kind.stem
        found[kind.name] = (
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
    for kind in KINDS:
        if kind.snapshot:
            first = _snapshot_candidate(fund_dir, kind.stem)
            if first is not None and not _mode(first, stat.S_ISREG):
                out.append(UnsafeEntry(kind.name, first, _reason(fund_dir, first, folder=False)))
            continue
        folder = fund_dir / kind.stem
        if folder.is_symlink():
            out.append(UnsafeEntry(kind.name, folder, _reason(fund_dir, folder, folder=True)))
            continue
        if not _mode(folder, stat.S_ISDIR):
            continue
        for p in sorted(_fact_candidates(folder), key=lambda p: p.name):
            if not _mode(p, stat.S_ISREG):
                out.append(UnsafeEntry(kind.name, p, _reason(fund_dir, p, folder=False)))
    return out


def _mode(path: Path, test: Callable[[int], bool]) -> bool:
    """``test`` on the entry itself (lstat: a symlink is never followed)."""
    try:
        return test(os.lstat(path).st_mode)
    except OSError:
        return False


def _snapshot_candidate(fund_dir: Path, stem: str) -> Path | None:
    # The first name that exists at all: a refused budget.csv must not let a
    # stale budget.xlsx load in its place.
    return next((p for p in (fund_dir / f"{stem}{s}" for s in SUFFIXES) if os.path.lexists(p)), None)


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
class FileDrop:
    """The default source: the office drops the files itself; a pull does nothing."""

    kind: str = "files"

    @classmethod
    def from_settings(cls, settings: Any, resolve: Resolver | None = None) -> FileDrop:
        return cls()

    def pull(self, fund_code: str, month: str, fund_dir: Path) -> Pulled:
        return Pulled(self.kind, fund_code, month)
