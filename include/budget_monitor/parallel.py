"""Spread per-fund work over the machine's cores.

The monthly close is one Airflow task that runs after every load (it must see
all of them), so the executor cannot spread it: at 2,000 funds it is ~0.15 s
of CPU-bound Python per fund (mostly the alert chart), i.e. one core busy for
minutes while the other idles (bench/RESULTS.md, stage d). This module runs
such a per-item function in worker processes: processes, not threads,
because the work holds the GIL.

Each worker is a fresh ``python -m budget_monitor.parallel`` subprocess that
reads its share of the items from a file and writes its results to another.
By hand rather than ``multiprocessing`` / ``concurrent.futures``, for three
measured reasons:

- Under Airflow's CeleryExecutor the task process is forked from a Celery
  pool process and inherits its *daemonic* flag, and multiprocessing refuses
  to start children there ("daemonic processes are not allowed to have
  children": tests/distributed, apache/airflow#13298). A plain subprocess is
  not a multiprocessing child and is allowed under every executor.
- multiprocessing's spawn re-runs the parent's ``__main__``, which in an
  Airflow task is the ``airflow`` console script (~6 s of imports per worker);
  ``-m budget_monitor.parallel`` imports only what the function needs.
- If the task process is killed, a worker still finishes its own share and
  exits (the close is idempotent); a pool worker would wait on its queue
  forever.

Workers inherit the caller's environment and ``sys.path`` (so a function in
a test or bench module resolves as in the caller), stdout and stderr (so their
output lands in the task log).
"""

from __future__ import annotations

import importlib
import os
import pickle
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from budget_monitor import atomic

T = TypeVar("T")
R = TypeVar("R")


class WorkerFailed(RuntimeError):
    """A worker process ended without its results (crashed, killed, or out of memory)."""


def cpu_count() -> int:
    """Cores this process may run on (its affinity mask, not the machine's total)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def worker_count(items: int, workers: int, min_per_worker: int) -> int:
    """How many processes ``items`` are worth: at most ``workers``, each with
    at least ``min_per_worker`` items (a worker costs seconds of imports
    before its first item, so a handful of funds stays in-process)."""
    return max(1, min(workers, items // max(1, min_per_worker)))


def _function_ref(fn: Callable[..., Any]) -> tuple[str, str]:
    module, name = getattr(fn, "__module__", None), getattr(fn, "__qualname__", "")
    if not module or module == "__main__" or "<" in name:
        raise ValueError(f"{fn!r}: a worker process needs a function defined at the top level of an importable module")
    return module, name


def _resolve(ref: tuple[str, str]) -> Callable[..., Any]:
    module, name = ref
    obj: Any = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def map_in_processes(
    fn: Callable[[T], R],
    items: Sequence[T],
    *,
    workers: int,
    min_per_worker: int = 1,
) -> list[R]:
    """``[fn(x) for x in items]``, in order, over up to ``workers`` processes.

    ``fn`` must be a top-level function of an importable module that returns
    its failures rather than raising (one item's error must not lose the
    others' results), and its arguments and results must pickle. Items are
    dealt out in turn (item i to worker i mod n), so big and small funds mix.
    With one worker it runs here, in this process, with no subprocess at all.
    Raises :class:`WorkerFailed` when a worker ends without its results.
    """
    n = worker_count(len(items), workers, min_per_worker)
    if n == 1:
        return [fn(x) for x in items]
    ref = _function_ref(fn)
    shares = [list(range(k, len(items), n)) for k in range(n)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    results: list[Any] = [None] * len(items)
    failed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="budget-monitor-workers-") as tmp:
        procs: list[tuple[subprocess.Popen, Path, list[int]]] = []
        try:
            for k, share in enumerate(shares):
                job, out = Path(tmp) / f"job{k}.pickle", Path(tmp) / f"result{k}.pickle"
                job.write_bytes(pickle.dumps((ref, [items[i] for i in share]), protocol=pickle.HIGHEST_PROTOCOL))
                cmd = [sys.executable, "-m", "budget_monitor.parallel", str(job), str(out)]
                procs.append((subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL), out, share))
            for proc, out, share in procs:
                code = proc.wait()
                if code != 0 or not out.is_file():
                    failed.append(f"worker pid {proc.pid} exit code {code} ({len(share)} items)")
                    continue
                for i, result in zip(share, pickle.loads(out.read_bytes())):
                    results[i] = result
        finally:  # this process stopped early (an error, a timeout's SIGTERM): stop the workers too
            for proc, _, _ in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
    if failed:
        raise WorkerFailed("工作进程异常退出，未返回结果：" + "；".join(failed))
    return results


def portable_error(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling (to cross from a worker process), else a
    RuntimeError with its type and message: some library exceptions take
    constructor arguments their pickled form does not carry."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001 - any pickling failure means: send the text instead
        return RuntimeError(f"{type(exc).__name__}: {exc}")


def _worker_main(job: Path, out: Path) -> int:
    """One worker: run the function over its share, write the results atomically."""
    ref, share = pickle.loads(job.read_bytes())
    fn = _resolve(ref)
    results = [fn(x) for x in share]
    # A scratch file in the map's own temp dir: atomic, durability not needed.
    atomic.write_bytes(out, pickle.dumps(results, protocol=pickle.HIGHEST_PROTOCOL), durable=False)
    return 0


if __name__ == "__main__":
    sys.exit(_worker_main(Path(sys.argv[1]), Path(sys.argv[2])))
