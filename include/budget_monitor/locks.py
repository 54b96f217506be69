"""One run at a time per fund: a lock held for the whole load/close/year-end.

Two runs of the same fund and month (a cron job and an operator, a DAG retry
and a manual run) would otherwise validate the same file against the same
store and race to insert it; the loser crashed on the ``source_file``
unique key. With :func:`fund_lock` the second run waits (bounded) and then
either finds the work done or raises :class:`FundBusy` with a Chinese line
saying nothing was changed.

- PostgreSQL: a session advisory lock (``pg_try_advisory_lock``) on a
  connection of its own, held for the duration and in autocommit (no idle
  transaction). The key is the first 8 bytes of a sha256 of the fund code:
  stable across processes and Python versions (``hash()`` is not). A
  process that dies loses its session, and the lock with it.
- SQLite: ``fcntl.flock`` on ``<database file>.<fund>.lock`` beside the
  database (mode 0600). The kernel drops it when the process dies; the file
  itself is left in place (deleting a lock file races with its next user).
- SQLite in memory: a lock inside this process (no other process can see
  that database anyway).

The lock is re-entrant within a thread (run_monthly holding it may call
load_month that takes it again) but not across threads or processes: a
second thread, or a worker process started while the lock is held, waits
like any other run.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, text

from .names import safe_name
from .paths import file_mode

log = logging.getLogger(__name__)

DEFAULT_WAIT_S = 60.0
POLL_S = 0.2
_KEY_NAMESPACE = b"budget-monitor/fund-lock/"
_PLAIN_CODE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")

# Replaced by tests to observe that a run is waiting (no timed assertions).
_sleep: Callable[[float], None] = time.sleep

_held = threading.local()  # per thread: lock identity -> depth
_memory_locks: dict[tuple[str, str], threading.Lock] = {}
_memory_guard = threading.Lock()


class FundBusy(RuntimeError):
    """Another run holds the fund; this one changed nothing."""

    def __init__(self, fund_code: str, waited_s: float) -> None:
        self.fund_code = fund_code
        self.waited_s = waited_s
        self.reason = (
            f"另一个运行正在处理资金 {safe_name(fund_code)}（已等待 {_seconds(waited_s)} 秒），"
            "本次未做任何改动；请稍后重试"
        )
        super().__init__(self.reason)


def _seconds(s: float) -> str:
    return f"{s:.1f}".removesuffix(".0")


def advisory_key(fund_code: str) -> int:
    """The PostgreSQL advisory lock key (signed bigint) of a fund."""
    digest = hashlib.sha256(_KEY_NAMESPACE + fund_code.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def lock_file_path(engine: Engine, fund_code: str) -> Path | None:
    """``<db file>.<fund>.lock`` for a file-backed SQLite store, else None."""
    db = engine.url.database
    if engine.dialect.name != "sqlite" or not db or db == ":memory:" or db.startswith("file:"):
        return None
    # A code that could not be a file name part (validated codes always can)
    # is replaced by its digest rather than trusted.
    part = fund_code if _PLAIN_CODE.match(fund_code) else "h" + hashlib.sha256(fund_code.encode()).hexdigest()[:16]
    return Path(f"{db}.{part}.lock")


def _depths() -> dict[tuple[str, str], int]:
    if not hasattr(_held, "depths"):
        _held.depths = {}
    return _held.depths


@contextmanager
def fund_lock(engine: Engine, fund_code: str, *, wait_s: float = DEFAULT_WAIT_S) -> Iterator[None]:
    """Hold the fund's lock for the ``with`` block.

    Polls every :data:`POLL_S` seconds for up to ``wait_s`` seconds (0: try
    once), then raises :class:`FundBusy`. Re-entrant within one thread.
    """
    ident = (engine.url.render_as_string(hide_password=True), fund_code)
    depths = _depths()
    if depths.get(ident):
        depths[ident] += 1
        try:
            yield
        finally:
            depths[ident] -= 1
        return
    if engine.dialect.name == "postgresql":
        held = _pg_lock(engine, fund_code, wait_s)
    elif engine.dialect.name == "sqlite":
        path = lock_file_path(engine, fund_code)
        held = _file_lock(path, fund_code, wait_s) if path else _memory_lock(ident, wait_s)
    else:
        raise NotImplementedError(f"fund_lock: unsupported database {engine.dialect.name}")
    with held:
        depths[ident] = 1
        try:
            yield
        finally:
            del depths[ident]


def _poll(try_once: Callable[[], bool], fund_code: str, wait_s: float) -> None:
    start = time.monotonic()
    announced = False
    while not try_once():
        waited = time.monotonic() - start
        if waited >= wait_s:
            raise FundBusy(fund_code, waited)
        if not announced:
            log.info("资金 %s 正由另一个运行处理，最多等待 %s 秒", safe_name(fund_code), _seconds(wait_s))
            announced = True
        _sleep(min(POLL_S, wait_s - waited))


@contextmanager
def _pg_lock(engine: Engine, fund_code: str, wait_s: float) -> Iterator[None]:
    key = advisory_key(fund_code)
    conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    try:
        _poll(
            lambda: bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()), fund_code, wait_s
        )
    except BaseException:
        conn.close()
        raise
    try:
        yield
    finally:
        try:
            released = conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key}).scalar()
            if not released:
                log.warning("fund lock of %s was lost during the run (session ended)", fund_code)
        except Exception:  # noqa: BLE001 - a broken session holds no lock; never pool it
            conn.invalidate()
        conn.close()


@contextmanager
def _file_lock(path: Path, fund_code: str, wait_s: float) -> Iterator[None]:
    # O_NOFOLLOW: a symlink planted at the lock's name is an error, not followed.
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, file_mode())

    def try_once() -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return False
            raise
        return True

    try:
        _poll(try_once, fund_code, wait_s)
    except BaseException:
        os.close(fd)
        raise
    try:
        # Who holds it, for an operator looking at the file (not used to decide anything).
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


@contextmanager
def _memory_lock(ident: tuple[str, str], wait_s: float) -> Iterator[None]:
    with _memory_guard:
        lock = _memory_locks.setdefault(ident, threading.Lock())
    _poll(lambda: lock.acquire(blocking=False), ident[1], wait_s)
    try:
        yield
    finally:
        lock.release()


@contextmanager
def fund_locks(
    engine: Engine, fund_codes: list[str], *, wait_s: float = DEFAULT_WAIT_S
) -> Iterator[dict[str, FundBusy]]:
    """Hold many funds' locks at once (a batch load of a DAG task): yields the
    funds that stayed busy for ``wait_s`` in all, each with its FundBusy; the
    others are held for the ``with`` block and re-entrant like fund_lock.

    On PostgreSQL every lock is taken on ONE connection (a session may hold
    many advisory locks): a lock per connection would need a pooled
    connection per fund, and a task loads 100 funds. Codes are taken in
    sorted order so that two batches meet in the same order.
    """
    from contextlib import ExitStack

    deadline = time.monotonic() + wait_s
    busy: dict[str, FundBusy] = {}
    codes = sorted(dict.fromkeys(fund_codes))
    url = engine.url.render_as_string(hide_password=True)
    depths = _depths()
    with ExitStack() as stack:
        if engine.dialect.name == "postgresql":
            conn = stack.enter_context(engine.connect().execution_options(isolation_level="AUTOCOMMIT"))
            held: list[int] = []

            def release() -> None:
                try:
                    for key in held:
                        conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                except Exception:  # noqa: BLE001 - a broken session holds no lock; never pool it
                    conn.invalidate()

            stack.callback(release)
            for code in codes:
                if depths.get((url, code)):
                    continue
                key = advisory_key(code)
                try:
                    _poll(
                        lambda k=key: bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": k}).scalar()),
                        code,
                        max(0.0, deadline - time.monotonic()),
                    )
                except FundBusy as exc:
                    busy[code] = exc
                    continue
                held.append(key)
        else:
            for code in codes:
                try:
                    stack.enter_context(fund_lock(engine, code, wait_s=max(0.0, deadline - time.monotonic())))
                except FundBusy as exc:
                    busy[code] = exc
        mine = [(url, c) for c in codes if c not in busy and not depths.get((url, c))]
        for ident in mine:
            depths[ident] = 1
        try:
            yield busy
        finally:
            for ident in mine:
                depths.pop(ident, None)
