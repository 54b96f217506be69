"""Shared helpers for the benchmark stages: timers, RSS sampling, databases."""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
MiB = 1024 * 1024


class RssPeak:
    """Samples this process's RSS every ``interval`` s; ``peak()`` since the last reset.

    ru_maxrss only ever grows, so per-step peaks inside one process need a sampler.
    """

    def __init__(self, interval: float = 0.02) -> None:
        import psutil

        self._proc = psutil.Process()
        self._interval = interval
        self._peak = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                rss = self._proc.memory_info().rss
            except Exception:  # noqa: BLE001 - sampling must never kill a benchmark
                rss = 0
            with self._lock:
                self._peak = max(self._peak, rss)
            self._stop.wait(self._interval)

    def reset(self) -> None:
        with self._lock:
            self._peak = self._proc.memory_info().rss

    def peak_mib(self) -> float:
        with self._lock:
            return round(max(self._peak, self._proc.memory_info().rss) / MiB, 1)

    def close(self) -> None:
        self._stop.set()


class Recorder:
    """Collects named timings (seconds) and step peaks (MiB) of one stage process."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.rss = RssPeak()

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        self.rss.reset()
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.data[f"{name}_s"] = round(time.perf_counter() - t0, 3)
            self.data[f"{name}_peak_mib"] = self.rss.peak_mib()

    def put(self, key: str, value: Any) -> None:
        self.data[key] = value

    def finish(self) -> dict[str, Any]:
        self.rss.close()
        self.data["ru_maxrss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        ch = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        if ch:
            self.data["children_ru_maxrss_mib"] = round(ch / 1024, 1)
        return self.data


class Timings:
    """Accumulates time spent in wrapped functions (monkeypatched for a breakdown)."""

    def __init__(self) -> None:
        self.total: dict[str, float] = {}
        self.calls: dict[str, int] = {}

    def wrap(self, owner: Any, attr: str, label: str | None = None) -> None:
        fn = getattr(owner, attr)
        name = label or attr
        acc = self

        def timed(*a: Any, **kw: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                acc.total[name] = acc.total.get(name, 0.0) + time.perf_counter() - t0
                acc.calls[name] = acc.calls.get(name, 0) + 1

        timed.__wrapped__ = fn  # type: ignore[attr-defined]
        setattr(owner, attr, timed)

    def as_dict(self) -> dict[str, Any]:
        return {
            k: {"s": round(v, 3), "calls": self.calls[k]} for k, v in sorted(self.total.items(), key=lambda kv: -kv[1])
        }


def fresh_pg_db(name: str) -> str:
    """Drop and create database ``name``; return its SQLAlchemy URL."""
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return f"{base}/{name}"


def drop_pg_db(name: str) -> None:
    import psycopg

    try:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except Exception:  # noqa: BLE001 - cleanup is best effort
        pass


def pg_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
        return True
    except Exception:  # noqa: BLE001
        return False


def machine_facts() -> dict[str, Any]:
    facts: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                facts["cpu_model"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                facts["ram_gib"] = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    try:
        facts["nproc_available"] = len(os.sched_getaffinity(0))
        facts["loadavg_at_start"] = [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        pass
    try:
        facts["git_commit"] = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        pass
    import importlib.metadata as md

    vers = {}
    for pkg in ("pandas", "numpy", "great-expectations", "sqlalchemy", "duckdb", "apache-airflow", "psycopg"):
        try:
            vers[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    facts["versions"] = vers
    return facts


# ../shared/notes/performance-anchors.md: fresh-process import times measured
# on this machine kind when the budgets were set (seconds).
ANCHORS_S = {"pandas": 1.4, "great_expectations": 7.3}


# The same anchors' compute figures for 1M payments: read_csv GBK all-str 1.23 s
# + exact fen (fast path) 0.54 s + to_datetime 0.09 s; bench/baseline.py's
# bare_read_typed does exactly these three (it measured 1.80 s on 2026-11-27).
ANCHOR_READ_1M_S = 1.23 + 0.54 + 0.09


def compute_speed(year_csv: Path, repeat: int = 2) -> dict[str, Any]:
    """Compute-bound speed probe: ``baseline.bare_read_typed`` of the 1M-row GBK
    year in a fresh process (min of ``repeat``; the first also warms the page
    cache) against ``ANCHOR_READ_1M_S``. Import times (``machine_speed``) track
    disk and start-up and once read 1.1x while this read 1.8x slower on
    2026-12-02; this is the figure to scale compute-bound stages by."""
    code = (
        "import sys, time; from pathlib import Path; sys.path.insert(0, sys.argv[1]); import baseline\n"
        "best = float('inf')\n"
        f"for _ in range({int(repeat)}):\n"
        "    t = time.perf_counter(); baseline.bare_read_typed(Path(sys.argv[2])); "
        "best = min(best, time.perf_counter() - t)\n"
        "print(best)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(Path(__file__).parent), str(year_csv)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    best = float(out.strip().splitlines()[-1])
    return {"read_1m_s": round(best, 2), "read_slowdown": round(best / ANCHOR_READ_1M_S, 2)}


def machine_speed(repeat: int = 3, modules: tuple[str, ...] = tuple(ANCHORS_S)) -> dict[str, Any]:
    """How fast this machine is right now, against the performance anchors.

    The machine is shared and its speed drifts (the same code measured 2.2x
    slower on one day than on another): a fresh-process ``import pandas`` and
    ``import great_expectations`` (min of ``repeat``) compared with the
    anchors say by how much, so absolute seconds can be read in context.
    ``slowdown`` is the mean of the ratios (1.0 = the anchors' speed).
    """
    out: dict[str, Any] = {}
    ratios = []
    for mod in modules:
        anchor = ANCHORS_S[mod]
        best = float("inf")
        for _ in range(repeat):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", f"import {mod}"], check=True, capture_output=True)
            best = min(best, time.perf_counter() - t0)
        out[f"import_{mod}_s"] = round(best, 2)
        ratios.append(best / anchor)
    out["slowdown"] = round(sum(ratios) / len(ratios), 2)
    return out


def dump(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1, default=str), encoding="utf-8")
