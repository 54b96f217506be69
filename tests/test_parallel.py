"""Spreading per-fund work over processes: how many, and errors that cross."""

from __future__ import annotations

import os

import multiprocessing

import pytest

from budget_monitor.parallel import WorkerFailed, map_in_processes, portable_error, worker_count


def test_worker_count_keeps_a_handful_of_items_in_process() -> None:
    assert worker_count(2000, 2, 40) == 2
    assert worker_count(79, 2, 40) == 1  # two workers would each get fewer than 40
    assert worker_count(80, 2, 40) == 2
    assert worker_count(0, 2, 40) == 1
    assert worker_count(10, 8, 1) == 8


def _pid_and_square(x: int) -> tuple[int, int]:
    return os.getpid(), x * x


def test_map_in_processes_keeps_order_and_uses_other_processes() -> None:
    out = map_in_processes(_pid_and_square, list(range(12)), workers=2, min_per_worker=1)
    assert [sq for _, sq in out] == [x * x for x in range(12)]
    pids = [pid for pid, _ in out]
    assert os.getpid() not in pids and len(set(pids)) == 2
    assert pids[0::2] == [pids[0]] * 6 and pids[1::2] == [pids[1]] * 6  # dealt out in turn
    alone = map_in_processes(_pid_and_square, [3], workers=2, min_per_worker=1)
    assert alone == [(os.getpid(), 9)]  # one item: no subprocess, this process


def _spread_from_a_daemon(queue) -> None:
    try:
        queue.put(sorted({pid for pid, _ in map_in_processes(_pid_and_square, list(range(4)), workers=2)}))
    except BaseException as exc:  # noqa: BLE001 - reported to the test
        queue.put(repr(exc))


def test_a_daemonic_caller_still_spreads() -> None:
    """An Airflow task under the CeleryExecutor is a fork of a Celery pool process and
    inherits its daemonic flag; multiprocessing refuses children there, our workers not."""
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_spread_from_a_daemon, args=(queue,), daemon=True)
    proc.start()
    got = queue.get(timeout=120)
    proc.join(30)
    assert isinstance(got, list) and len(got) == 2, got


def _die_on_three(x: int) -> int:
    if x == 3:
        os._exit(7)
    return x


def test_a_worker_that_dies_fails_the_map_by_name() -> None:
    with pytest.raises(WorkerFailed) as exc:
        map_in_processes(_die_on_three, list(range(6)), workers=2)
    assert "exit code 7" in str(exc.value) and "3 items" in str(exc.value)


def test_only_importable_functions_go_to_workers() -> None:
    with pytest.raises(ValueError, match="top level"):
        map_in_processes(lambda x: x, [1, 2], workers=2)


class _NeedsTwoArgs(Exception):
    def __init__(self, what: str, where: str) -> None:
        super().__init__(f"{what} at {where}")


def test_portable_error_replaces_an_exception_that_does_not_unpickle() -> None:
    ok = ValueError("指标文号 不存在")
    assert portable_error(ok) is ok
    bad = portable_error(_NeedsTwoArgs("lock", "outbox"))
    assert type(bad) is RuntimeError and str(bad) == "_NeedsTwoArgs: lock at outbox"
