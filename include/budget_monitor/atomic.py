"""Atomic file writes: a file is either its old self, or complete and new.

Every writer goes to a temporary name in the destination's own directory (a
rename is atomic only within one file system), is flushed to disk, and is
renamed over the destination with ``os.replace``. A failure at any point
(disk full, a quota or RLIMIT_FSIZE, an exception in a library mid-write)
removes the temporary file and leaves the destination as it was: never a
truncated 自评报告.docx, never a stray ``.part``.

=====================  ==================================================
write_bytes/write_text  whole content in hand
copy_file               byte copy (archive copies)
atomic_path             context manager yielding a temp path, for libraries
                        that write by path (matplotlib's savefig, shutil)
staged                  a set of files in one directory, renamed into place
                        only once every one of them was written
remove_stale_temps      sweep the temps a killed process (kill -9) left behind
=====================  ==================================================

Where a library can write to memory (python-docx, openpyxl and PIL can), let
it, and hand the bytes to write_bytes: a zip writer that fails half-way is
left unclosed, and when it is garbage-collected it tries to write again and
prints "Exception ignored ... OSError" on stderr (found with RLIMIT_FSIZE).

Temporary names are hidden and recognisable:
``.<name, cut to 80 bytes>.<pid>-<8 hex>.tmp<suffix>``. The suffix is kept
because some libraries choose the format from it (matplotlib's savefig); the
pid lets :func:`remove_stale_temps` tell a dead writer's leftovers from a live
writer's file in progress without any clock.

Files get the mode ``0o666`` less the process umask, as ``open`` would give,
unless ``mode`` is passed: then exactly that mode (set with fchmod, whatever
the umask), e.g. ``paths.file_mode()`` for owner-only reports. A library
writing into a stage's temp file (write_outputs hands those to the chart
code) gets the stage's mode.

``BUDGET_MONITOR_FSYNC=0`` skips the fsyncs (benchmarks on a scratch disk);
the rename stays atomic for other processes, only durability across a power
loss is given up.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_NAME_BYTES = 80  # of the destination's name kept in the temp name (NAME_MAX is 255 bytes)
_SUFFIX_BYTES = 16
_TEMP = re.compile(r"^\..*\.(?P<pid>\d+)-[0-9a-f]{8}\.tmp(\.[^.]*)?$", re.DOTALL)


_local = threading.local()  # .staged: temp path -> mode, of this thread's open stages


def _staged_here() -> dict[Path, int | None]:
    staged_paths = getattr(_local, "staged", None)
    if staged_paths is None:
        staged_paths = _local.staged = {}
    return staged_paths


def _durable_default() -> bool:
    return os.environ.get("BUDGET_MONITOR_FSYNC", "1").strip().lower() not in ("0", "false", "no", "off")


def _cut(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes, on a character boundary."""
    return text.encode("utf-8", "surrogateescape")[:limit].decode("utf-8", "ignore")


def temp_name(dest: Path) -> str:
    """A fresh temporary name for ``dest`` (its directory, hidden, bounded length)."""
    suffix = dest.suffix if len(dest.suffix.encode("utf-8", "surrogateescape")) <= _SUFFIX_BYTES else ""
    return f".{_cut(dest.name, _NAME_BYTES)}.{os.getpid()}-{secrets.token_hex(4)}.tmp{suffix}"


def is_temp_name(name: str) -> bool:
    """Whether ``name`` is one of this module's temporary names."""
    return _TEMP.match(name) is not None


def _reserve(dest: Path, mode: int | None) -> Path:
    """Create an empty, new temporary file beside ``dest`` (O_EXCL: never someone else's)."""
    while True:
        tmp = dest.with_name(temp_name(dest))
        try:
            fd = os.open(
                tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666 if mode is None else mode
            )
        except FileExistsError:
            continue
        try:
            if mode is not None:
                os.fchmod(fd, mode)  # exactly this mode: the umask may have removed bits of it
        finally:
            os.close(fd)
        return tmp


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable. Some file systems refuse fsync on a directory."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def _name_destination(exc: BaseException, temps: dict[Path, Path]) -> None:
    """Make an OSError name the file the user asked for, not our hidden temp name.

    ``temps`` maps temp -> destination. A write error (ENOSPC, EFBIG) often
    carries no file name at all; raised while writing exactly one file it is
    that file's. The CLI's one-line message shows ``filename``.
    """
    if not isinstance(exc, OSError):
        return
    if exc.filename is None and len(temps) == 1:
        exc.filename = str(next(iter(temps.values())))
    elif exc.filename is not None:
        dest = temps.get(Path(os.fsdecode(exc.filename)))
        if dest is not None:
            exc.filename = str(dest)


def _write_all(path: Path, data: bytes) -> None:
    """Write ``data`` into the existing file ``path`` with plain os.write calls.

    No buffered file object: when a write fails (ENOSPC, EFBIG) nothing is
    left buffered for a later close or a garbage-collected object to try
    again and report on stderr.
    """
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0))
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def _unlink_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


@contextmanager
def atomic_path(
    dest: str | os.PathLike[str], *, mode: int | None = None, durable: bool | None = None
) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; when the block ends normally the
    file written there is flushed and renamed to ``dest``. When the block
    raises (or the rename fails), the temporary file is removed and ``dest``
    keeps what it had.

    The yielded file exists (empty) so that no other writer can take its name;
    libraries that open it for writing truncate it as usual.
    """
    dest = Path(dest)
    staged_paths = _staged_here()
    if dest in staged_paths:
        # Writing into a stage's temp file (write_outputs hands those to the
        # chart code): the stage's mode, and the stage flushes it at its commit.
        mode = staged_paths[dest] if mode is None else mode
        durable = False if durable is None else durable
    elif durable is None:
        durable = _durable_default()
    tmp = _reserve(dest, mode)
    try:
        yield tmp
        if durable:
            _fsync_file(tmp)
        os.replace(tmp, dest)
    except BaseException as exc:
        _unlink_quietly(tmp)
        _name_destination(exc, {tmp: dest})
        raise
    if durable:
        _fsync_dir(dest.parent)


def write_bytes(
    dest: str | os.PathLike[str], data: bytes, *, mode: int | None = None, durable: bool | None = None
) -> Path:
    """Write ``data`` to ``dest`` atomically; return ``dest`` as a Path."""
    dest = Path(dest)
    with atomic_path(dest, mode=mode, durable=durable) as tmp:
        _write_all(tmp, data)
    return dest


def write_text(
    dest: str | os.PathLike[str],
    text: str,
    encoding: str = "utf-8",
    *,
    mode: int | None = None,
    durable: bool | None = None,
) -> Path:
    """Write ``text`` to ``dest`` atomically (no newline translation); return ``dest``."""
    return write_bytes(dest, text.encode(encoding), mode=mode, durable=durable)


def copy_file(
    src: str | os.PathLike[str], dest: str | os.PathLike[str], *, mode: int | None = None, durable: bool | None = None
) -> Path:
    """Copy ``src``'s bytes to ``dest`` atomically (no metadata); return ``dest``."""
    dest = Path(dest)
    with atomic_path(dest, mode=mode, durable=durable) as tmp:
        shutil.copyfile(src, tmp)
    return dest


class Staging:
    """Temporary files for several destinations in one directory; see :func:`staged`."""

    def __init__(self, directory: Path, mode: int | None, durable: bool) -> None:
        self.directory = directory
        self._mode = mode
        self._durable = durable
        self._temps: dict[str, Path] = {}

    def path(self, name: str) -> Path:
        """The temporary path to write ``directory/name`` through (the same one if asked again)."""
        if Path(name).name != name or name in ("", ".", ".."):
            raise ValueError(f"not a plain file name: {name!r}")
        tmp = self._temps.get(name)
        if tmp is None:
            tmp = self._temps[name] = _reserve(self.directory / name, self._mode)
            _staged_here()[tmp] = self._mode
        return tmp

    def write_bytes(self, name: str, data: bytes) -> Path:
        """Write ``name``'s content into its temp; a failure names ``directory/name``."""
        tmp = self.path(name)
        try:
            _write_all(tmp, data)
        except OSError as exc:
            _name_destination(exc, {tmp: self.directory / name})
            raise
        return tmp

    def write_text(self, name: str, text: str, encoding: str = "utf-8") -> Path:
        return self.write_bytes(name, text.encode(encoding))

    def _commit(self) -> list[Path]:
        if self._durable:
            for tmp in self._temps.values():
                _fsync_file(tmp)
        done: list[Path] = []
        for name, tmp in list(self._temps.items()):
            os.replace(tmp, self.directory / name)
            del self._temps[name]
            _staged_here().pop(tmp, None)
            done.append(self.directory / name)
        if self._durable and done:
            _fsync_dir(self.directory)
        return done

    def _abort(self) -> None:
        for tmp in self._temps.values():
            _unlink_quietly(tmp)
            _staged_here().pop(tmp, None)
        self._temps.clear()


@contextmanager
def staged(
    directory: str | os.PathLike[str], *, mode: int | None = None, durable: bool | None = None
) -> Iterator[Staging]:
    """Write a set of files into ``directory`` all or nothing (as far as a file
    system allows): ``stage.path(name)`` gives the temporary path to write each
    one through; only when the block ends normally are they flushed and renamed
    into place, one after another. When anything fails before that, every
    temporary file is removed and the directory keeps its old files: a rerun
    after a full disk does not find half a new report beside half an old one.

    The renames themselves need no space and do not fail in practice; if one
    does, the files renamed before it stay (each complete) and the rest are
    removed.
    """
    stage = Staging(Path(directory), mode, _durable_default() if durable is None else durable)
    try:
        yield stage
        stage._commit()
    except BaseException as exc:
        if isinstance(exc, OSError) and exc.filename is not None:
            _name_destination(exc, {tmp: stage.directory / name for name, tmp in stage._temps.items()})
        stage._abort()
        raise


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True  # ours: perhaps another thread's file in progress
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, someone else's
    except OSError:
        return True
    return True


def remove_stale_temps(directory: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporary files in ``directory`` whose writer is no longer running.

    A process killed with SIGKILL (or a machine that lost power) cannot clean
    up after itself; the next writer to the directory calls this. A temp of a
    live process is left alone. Limitation: a writer in another PID namespace
    (another container sharing the directory) looks dead.
    """
    removed: list[Path] = []
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return removed
    for entry in entries:
        m = _TEMP.match(entry.name)
        if m is None or not entry.is_file(follow_symlinks=False) or _pid_alive(int(m["pid"])):
            continue
        try:
            os.unlink(entry.path)
        except FileNotFoundError:
            continue
        removed.append(Path(entry.path))
    return removed


__all__ = [
    "atomic_path",
    "write_bytes",
    "write_text",
    "copy_file",
    "staged",
    "Staging",
    "remove_stale_temps",
    "temp_name",
    "is_temp_name",
]
