"""Owner-only files and directories, and paths that stay inside their root.

Permissions. The store, the raw-file archive, the quarantine and the reports
hold payment data, so what budget-monitor creates is owner-only: directories
0700, files 0600, whatever the umask. Where another account must read them
(the finance office reading the quarantine over a share, a web server
serving reports), set ``BUDGET_MONITOR_SHARED_GROUP=1``: directories become
0750 and files 0640, readable by the owner's group and still by nobody
else. Only what is created is set; an existing directory (a home, a
user-chosen ``--out``) keeps its mode.

Containment. A fund code or a file name becomes a path component under a
root (``<archive>/<fund>/...``, ``<reports>/<fund>/<year>/``); ``..``, an
absolute part or a separator would write elsewhere. :func:`contained`
refuses that whatever the caller validated before (defence in depth).
"""

from __future__ import annotations

import os
from pathlib import Path

from .names import safe_name

SHARED_GROUP_ENV = "BUDGET_MONITOR_SHARED_GROUP"


class UnsafePath(ValueError):
    """A path would leave its root; the message is for the finance office."""


def shared_group() -> bool:
    """True when ``BUDGET_MONITOR_SHARED_GROUP`` is set to 1/true/yes/on."""
    return os.environ.get(SHARED_GROUP_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def dir_mode() -> int:
    """0700, or 0750 with BUDGET_MONITOR_SHARED_GROUP=1."""
    return 0o750 if shared_group() else 0o700


def file_mode() -> int:
    """0600, or 0640 with BUDGET_MONITOR_SHARED_GROUP=1."""
    return 0o640 if shared_group() else 0o600


def owner_only_mode() -> tuple[int, int]:
    """(directory mode, file mode) in force: (0o700, 0o600) unless shared."""
    return dir_mode(), file_mode()


def private_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` and any missing parents with :func:`dir_mode`; return it.

    Existing directories are left as they are. The mode is set with chmod
    after mkdir because the umask may remove the group bits of 0750; between
    the two calls the directory is never more open than asked.
    """
    path = Path(path)
    missing: list[Path] = []
    p = path
    while not os.path.lexists(p) and p != p.parent:
        missing.append(p)
        p = p.parent
    mode = dir_mode()
    for d in reversed(missing):
        try:
            os.mkdir(d, mode)
        except FileExistsError:
            continue  # created meanwhile by a concurrent run, with the same mode
        os.chmod(d, mode)
    if not path.is_dir():
        raise NotADirectoryError(f"{path} 不是目录")
    return path


def private_file(path: str | os.PathLike[str]) -> Path:
    """Set :func:`file_mode` on a file this process created; return it."""
    os.chmod(path, file_mode())
    return Path(path)


def touch_private(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` empty with :func:`file_mode` if it does not exist.

    Used for the SQLite database before SQLite opens it: SQLite gives its
    -wal and -shm files the mode of the database file, so all three are
    owner-only.
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, file_mode())
    except FileExistsError:
        return path
    try:
        os.fchmod(fd, file_mode())
    finally:
        os.close(fd)
    return path


def contained(root: str | os.PathLike[str], *parts: str) -> Path:
    """``root / part / ...``, refusing any part that would leave ``root``.

    Each part must be one plain path component (not empty, not ``.`` or
    ``..``, no separator, no NUL), and the joined path must still lie under
    ``root`` once symlinks already on disk are resolved.
    """
    root = Path(root)
    for part in parts:
        part = str(part)
        if part in ("", ".", "..") or "/" in part or "\x00" in part:
            raise UnsafePath(f"路径成分“{safe_name(part)}”不安全（会写到 {safe_name(str(root))} 之外），已拒绝")
    target = root.joinpath(*parts)
    real_root = root.resolve()
    if not target.resolve().is_relative_to(real_root):
        raise UnsafePath(f"路径 {safe_name(str(target))} 解析后位于 {safe_name(str(real_root))} 之外，已拒绝")
    return target
