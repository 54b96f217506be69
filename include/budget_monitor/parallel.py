"""Spread per-fund work over the machine's cores.

The monthly close is one Airflow task that runs after every load (it must see
all of them), so the executor cannot spread it: at 2,000 funds it is ~0.15 s
of CPU-bound Python per fund (mostly the alert chart), i.e. one core busy for
minutes while the other idles (bench/RESULTS.md, stage d). This module runs
such a per-item function in worker processes, standard library only
(``concurrent.futures``): processes, not threads, because the work holds the
GIL.

Workers are *spawned* (a fresh interpreter, as an Airflow task process would
have), never forked: the calling process may be an Airflow task with threads
and open database connections, which a fork would copy mid-flight.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def cpu_count() -> int:
    """Cores this process may run on (its affinity mask, not the machine's total)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def worker_count(items: int, workers: int, min_per_worker: int) -> int:
    """How many processes ``items`` are worth: at most ``workers``, each with
    at least ``min_per_worker`` items (a spawned worker costs seconds of
    imports before its first item, so a handful of funds stays in-process)."""
    return max(1, min(workers, items // max(1, min_per_worker)))


def map_in_processes(
    fn: Callable[[T], R], items: Sequence[T], *, workers: int, min_per_worker: int = 1, chunksize: int = 4,
) -> list[R]:
    """``[fn(x) for x in items]``, in order, over up to ``workers`` processes.

    ``fn`` must be a module-level function that returns its failures rather
    than raising (one item's error must not lose the others' results), and
    its arguments and results must pickle. With one worker it runs here, in
    this process, with no pool at all.
    """
    n = worker_count(len(items), workers, min_per_worker)
    if n == 1:
        return [fn(x) for x in items]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=n, mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(pool.map(fn, items, chunksize=max(1, chunksize)))


def portable_error(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling (to cross from a worker process), else a
    RuntimeError with its type and message: some library exceptions take
    constructor arguments their pickled form does not carry."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001 - any pickling failure means: send the text instead
        return RuntimeError(f"{type(exc).__name__}: {exc}")
