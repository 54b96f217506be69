"""locks.fund_lock: one run at a time per fund, on SQLite (flock) and PostgreSQL (advisory lock).

No timed assertions: a waiting run is observed through the lock's poll
sleep (replaced by one that signals), never by how long something took.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy import text

from budget_monitor import locks, store
from budget_monitor.locks import FundBusy, advisory_key, fund_lock, lock_file_path

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def waiting(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Set as soon as any run polls for a lock it could not take."""
    event = threading.Event()
    real_sleep = locks._sleep

    def sleep(seconds: float) -> None:
        event.set()
        real_sleep(seconds)

    monkeypatch.setattr(locks, "_sleep", sleep)
    return event


def test_second_run_waits_while_first_holds_then_proceeds(db_url: str, waiting: threading.Event) -> None:
    engine = store.open_store(db_url)
    order: list[str] = []
    first_in, release = threading.Event(), threading.Event()

    def first() -> None:
        with fund_lock(engine, "F1", wait_s=0):
            order.append("first")
            first_in.set()
            release.wait(30)
            order.append("first done")

    def second() -> None:
        with fund_lock(engine, "F1", wait_s=120):
            order.append("second")

    a = threading.Thread(target=first)
    a.start()
    assert first_in.wait(30)
    b = threading.Thread(target=second)
    b.start()
    assert waiting.wait(30), "the second run never polled"
    assert order == ["first"]  # still waiting: the first holds the fund
    release.set()
    a.join(30)
    b.join(30)
    assert order == ["first", "first done", "second"]


def test_second_run_gives_up_with_fund_busy(db_url: str) -> None:
    engine = store.open_store(db_url)
    with fund_lock(engine, "F1"):
        errors: list[BaseException] = []

        def other() -> None:
            try:
                with fund_lock(engine, "F1", wait_s=0.3):
                    pass
            except BaseException as exc:  # noqa: BLE001 - collected for the assertion
                errors.append(exc)

        t = threading.Thread(target=other)
        t.start()
        t.join(60)
    (exc,) = errors
    assert isinstance(exc, FundBusy)
    assert exc.fund_code == "F1" and exc.waited_s >= 0.3
    assert str(exc) == exc.reason
    assert exc.reason.startswith("另一个运行正在处理资金 F1（已等待 0.")
    assert exc.reason.endswith("秒），本次未做任何改动；请稍后重试")
    assert "\n" not in exc.reason


def test_other_funds_are_not_blocked(db_url: str) -> None:
    engine = store.open_store(db_url)
    got: list = []
    with fund_lock(engine, "F1"):
        t = threading.Thread(target=_try, args=(engine, "F2", got))
        t.start()
        t.join(30)
    assert got == ["taken"]


def test_lock_is_reentrant_in_one_thread_and_released_after(db_url: str) -> None:
    engine = store.open_store(db_url)
    with fund_lock(engine, "F1", wait_s=0):
        with fund_lock(engine, "F1", wait_s=0):  # run_monthly -> load_month
            pass
        busy: list = []
        t = threading.Thread(target=_try, args=(engine, "F1", busy))
        t.start()
        t.join(30)
        assert len(busy) == 1 and isinstance(busy[0], FundBusy)  # still held after the inner exit
    free: list = []
    _try(engine, "F1", free)
    assert free == ["taken"]


def _try(engine, code: str, out: list) -> None:
    """Try the lock once; record "taken" or the exception."""
    try:
        with fund_lock(engine, code, wait_s=0):
            out.append("taken")
    except BaseException as exc:  # noqa: BLE001 - collected for the assertion
        out.append(exc)


_HOLDER = """
import sys
from budget_monitor import store
from budget_monitor.locks import fund_lock
engine = store.open_store(sys.argv[1])
with fund_lock(engine, sys.argv[2], wait_s=0):
    print("held", flush=True)
    sys.stdin.readline()
print("released", flush=True)
"""


def _holder(db_url: str, code: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, db_url, code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_another_process_holding_the_fund_makes_this_one_wait_or_give_up(db_url: str) -> None:
    engine = store.open_store(db_url)
    proc = _holder(db_url, "F1")
    try:
        with pytest.raises(FundBusy, match="另一个运行正在处理资金 F1"):
            with fund_lock(engine, "F1", wait_s=0.2):
                pass
        done = threading.Event()

        def wait_for_it() -> None:
            with fund_lock(engine, "F1", wait_s=120):
                done.set()

        t = threading.Thread(target=wait_for_it)
        t.start()
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "released"
        t.join(120)
        assert done.is_set()
    finally:
        proc.kill()
        proc.wait()


def test_a_killed_holder_leaves_no_stale_lock(db_url: str) -> None:
    engine = store.open_store(db_url)
    proc = _holder(db_url, "F1")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with fund_lock(engine, "F1", wait_s=60):  # the backend/kernel drops it with the process
        pass


def test_sqlite_lock_file_sits_beside_the_database_owner_only(tmp_path: Path) -> None:
    engine = store.open_store(f"sqlite:///{tmp_path / 'db' / 'store.db'}")
    with fund_lock(engine, "jiangmen-2021"):
        path = lock_file_path(engine, "jiangmen-2021")
        assert path == tmp_path / "db" / "store.db.jiangmen-2021.lock"
        assert (path.stat().st_mode & 0o777) == 0o600
        assert path.read_text() == f"{os.getpid()}\n"
    # An unsafe code never becomes a path component.
    odd = lock_file_path(engine, "../x")
    assert odd is not None and odd.parent == tmp_path / "db" and ".." not in odd.name


def test_postgresql_lock_is_an_advisory_lock_on_its_own_session(pg_url: str) -> None:
    engine = store.open_store(pg_url)
    key = advisory_key("F1")
    assert key == advisory_key("F1") and key != advisory_key("F2") and -(2**63) <= key < 2**63
    sql = text(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
        " AND objsubid = 1 AND ((classid::bigint << 32) | objid::bigint) = :k"
    )
    with fund_lock(engine, "F1"):
        with engine.connect() as conn:
            assert conn.execute(sql, {"k": key}).scalar() == 1
            # No transaction is left open by the lock's session.
            idle = conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND state = 'idle in transaction'"
                )
            ).scalar()
            assert idle == 0
    with engine.connect() as conn:
        assert conn.execute(sql, {"k": key}).scalar() == 0


def test_sqlite_in_memory_store_locks_within_the_process() -> None:
    from sqlalchemy import create_engine

    engine = create_engine("sqlite://")
    busy: list = []
    with fund_lock(engine, "F1"):
        t = threading.Thread(target=_try, args=(engine, "F1", busy))
        t.start()
        t.join(30)
    assert len(busy) == 1 and isinstance(busy[0], FundBusy)
