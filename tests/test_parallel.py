"""Spreading per-fund work over processes: how many, and errors that cross."""

from __future__ import annotations

import os

from budget_monitor.parallel import map_in_processes, portable_error, worker_count


def test_worker_count_keeps_a_handful_of_items_in_process() -> None:
    assert worker_count(2000, 2, 40) == 2
    assert worker_count(79, 2, 40) == 1  # two workers would each get fewer than 40
    assert worker_count(80, 2, 40) == 2
    assert worker_count(0, 2, 40) == 1
    assert worker_count(10, 8, 1) == 8


def _pid_and_square(x: int) -> tuple[int, int]:
    return os.getpid(), x * x


def test_map_in_processes_keeps_order_and_uses_other_processes() -> None:
    out = map_in_processes(_pid_and_square, list(range(12)), workers=2, min_per_worker=1, chunksize=2)
    assert [sq for _, sq in out] == [x * x for x in range(12)]
    assert os.getpid() not in {pid for pid, _ in out}
    alone = map_in_processes(_pid_and_square, [3], workers=2, min_per_worker=1)
    assert alone == [(os.getpid(), 9)]  # one item: no pool, this process


class _NeedsTwoArgs(Exception):
    def __init__(self, what: str, where: str) -> None:
        super().__init__(f"{what} at {where}")


def test_portable_error_replaces_an_exception_that_does_not_unpickle() -> None:
    ok = ValueError("指标文号 不存在")
    assert portable_error(ok) is ok
    bad = portable_error(_NeedsTwoArgs("lock", "outbox"))
    assert type(bad) is RuntimeError and str(bad) == "_NeedsTwoArgs: lock at outbox"
