"""Infrastructure fault battery (issue 13, item 8): the CLI run as a subprocess
against real parts (a full disk, a PostgreSQL backend terminated mid-load, a
database that does not answer, kill -9, an output path that cannot be
written), on a copy of examples/jiangmen-2021.

Each test asserts what is left afterwards, not only the exit code: the store
(no half-loaded file; after a rerun the same facts as a clean run), the
outbox (nothing queued for a report that was not written; after a rerun the
same rows as a clean run), and the files (no partial or temporary file).

The CLI contract (cli.py): exit 3 for an infrastructure failure, with ONE line
on stderr starting "运行失败：" that names the log file
``<BUDGET_MONITOR_HOME>/logs/budget-monitor.log``, where the traceback goes.

Nothing asserts a duration: waits poll for a state (a loaded file, the end of
a process); timeouts only stop a hung test.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select, text

from budget_monitor import atomic, store

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "jiangmen-2021"
FUND_CODE = "JM-2021-YPJG"
OUTPUT_NAMES = {
    "self_evaluation.json",
    "自评报告.docx",
    "自评报告.html",
    "自评报告.md",
    "自评表.xlsx",
    "执行进度.png",
    "单位执行率.png",
}
PG_ADMIN_URL = os.environ.get("BUDGET_MONITOR_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
RUN_TIMEOUT_S = 900  # only against a hung run; nothing is asserted on time
# Writes beyond this many bytes fail (EFBIG): the charts and the JSON fit, 自评报告.docx (~140 KB) does not.
FSIZE_LIMIT = 100_000
TMPFS_SMALL = "160k"  # same idea on a tmpfs (ENOSPC)


# ------------------------------------------------------------------ helpers


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUDGET_MONITOR_")}
    env["BUDGET_MONITOR_HOME"] = str(home)
    if "BUDGET_MONITOR_TEST_PG" in os.environ:
        env["BUDGET_MONITOR_TEST_PG"] = os.environ["BUDGET_MONITOR_TEST_PG"]
    return env


def _cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "budget_monitor.cli", *args]


def cli(home: Path, *args: str, preexec_fn: Callable[[], None] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        _cmd(*args),
        env=_env(home),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        preexec_fn=preexec_fn,
        stdin=subprocess.DEVNULL,
    )


def monthly(fund: Path, month: str, db: str) -> list[str]:
    return ["monthly", str(fund), "--month", month, "--db", db, "--no-send"]


def year_end(fund: Path, out: Path, db: str) -> list[str]:
    return ["year-end", str(fund), "--year", "2021", "--out", str(out), "--db", db, "--no-send"]


def _ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr[-3000:]}"


def assert_infra_failure(proc: subprocess.CompletedProcess, home: Path, *mentions: str) -> str:
    """Exit 3, one line on stderr starting 运行失败： and naming the log file, which holds the traceback."""
    assert proc.returncode == 3, f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr[-3000:]}"
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    line = lines[0]
    assert line.startswith("运行失败："), line
    log = home / "logs" / "budget-monitor.log"
    assert str(log) in line, line
    assert "Traceback" in log.read_text(encoding="utf-8")
    for m in mentions:
        assert m in line, line
    return line


def _fund(root: Path) -> Path:
    dest = root / "fund"
    shutil.copytree(EXAMPLE, dest)
    return dest


def _tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (relative path -> bytes), for before/after comparisons."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _temps(root: Path) -> list[Path]:
    """Temporary or partial files left anywhere under ``root``."""
    return [
        p
        for p in root.rglob("*")
        if p.is_file() and (atomic.is_temp_name(p.name) or p.name.endswith((".part", ".tmp")))
    ]


def _sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def _plain_engine(url: str):
    """A plain engine (not store.open_store's cached, migrating one) to look at a store from outside."""
    return create_engine(store.normalise_url(url), future=True)


def _outbox_rows(url: str) -> Counter:
    engine = _plain_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(
                    store.outbox.c.fund_code,
                    store.outbox.c.unit,
                    store.outbox.c.period,
                    store.outbox.c.kind,
                    store.outbox.c.status,
                )
            ).all()
    finally:
        engine.dispose()
    return Counter(tuple(r) for r in rows)


def _snapshot(url: str) -> dict[str, list[tuple]]:
    engine = _plain_engine(url)
    try:
        return store.snapshot(engine, FUND_CODE)
    finally:
        engine.dispose()


def assert_no_partial_file(url: str) -> int:
    """Every loaded file is there whole: its ``rows`` equal the fact rows carrying its id, and no
    fact row lacks its file. Returns how many files are loaded."""
    engine = _plain_engine(url)
    try:
        with engine.connect() as conn:
            files = conn.execute(
                select(
                    store.source_file.c.id, store.source_file.c.kind, store.source_file.c.rows, store.source_file.c.name
                ).where(store.source_file.c.fund_code == FUND_CODE)
            ).all()
            by_id = {f.id: f for f in files}
            for kind, spec in store.FACTS.items():
                counts = dict(
                    conn.execute(
                        select(spec.table.c.source_file_id, func.count())
                        .where(spec.table.c.fund_code == FUND_CODE)
                        .group_by(spec.table.c.source_file_id)
                    ).all()
                )
                assert set(counts) <= set(by_id), f"{kind} rows without their source_file: {counts}"
                for file_id, n in counts.items():
                    assert by_id[file_id].kind == kind and by_id[file_id].rows == n, (by_id[file_id], n)
                if kind not in store.SNAPSHOT_KINDS:  # a snapshot's older versions hold no rows any more
                    for f in files:
                        if f.kind == kind:
                            assert counts.get(f.id, 0) == f.rows, f"half-loaded file {f.name}: {counts.get(f.id)}"
        return len(files)
    finally:
        engine.dispose()


@contextmanager
def _file_counter(url: str) -> Iterator[Callable[[], int]]:
    """count() -> how many files are loaded so far (0 while the schema is not there yet)."""
    if url.startswith("sqlite"):

        def count() -> int:
            try:
                with closing(sqlite3.connect(url.removeprefix("sqlite:///"), timeout=5)) as conn:
                    return conn.execute("SELECT count(*) FROM source_file").fetchone()[0]
            except sqlite3.Error:
                return 0

        yield count
        return
    engine = create_engine(store.normalise_url(url), isolation_level="AUTOCOMMIT")

    def count() -> int:
        try:
            with engine.connect() as conn:
                return conn.execute(text("SELECT count(*) FROM source_file")).scalar_one()
        except Exception:  # noqa: BLE001 - no table yet
            return 0

    try:
        yield count
    finally:
        engine.dispose()


# ------------------------------------------------------------------ PostgreSQL databases


def _service_missing(exc: BaseException) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"PostgreSQL is required under CI=true and is not reachable: {exc}")
    pytest.skip(f"PostgreSQL not reachable: {exc}")


class _PgDatabases:
    """Fresh PostgreSQL databases for one module (the clean reference runs); dropped at the end."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")

    def new(self) -> str:
        name = f"bm_infra_{uuid.uuid4().hex[:12]}"
        try:
            with self.admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        except Exception as exc:  # noqa: BLE001 - any connection failure means "service down"
            _service_missing(exc)
        self.names.append(name)
        return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"

    def drop_all(self) -> None:
        try:
            with self.admin.connect() as conn:
                for name in self.names:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        except Exception:  # noqa: BLE001 - nothing to drop when the service was never there
            pass
        self.admin.dispose()


@pytest.fixture(scope="module")
def clean_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str, str], dict[str, Any]]]:
    """clean(engine, month) -> the snapshot and outbox of an uninterrupted monthly run on a fresh
    store (computed once per module)."""
    cache: dict[tuple[str, str], dict[str, Any]] = {}
    pg = _PgDatabases()

    def clean(engine: str, month: str) -> dict[str, Any]:
        if (engine, month) not in cache:
            root = tmp_path_factory.mktemp(f"clean-{engine}-{month}")
            url = pg.new() if engine == "postgresql" else _sqlite_url(root / "store.db")
            _ok(cli(root / "home", *monthly(_fund(root), month, url)))
            assert_no_partial_file(url)
            cache[engine, month] = {"snapshot": _snapshot(url), "outbox": _outbox_rows(url)}
        return cache[engine, month]

    try:
        yield clean
    finally:
        pg.drop_all()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """(engine name, URL of a fresh store) on both engines."""
    if request.param == "sqlite":
        return "sqlite", _sqlite_url(tmp_path / "store.db")
    return "postgresql", request.getfixturevalue("pg_url")


# ------------------------------------------------------------------ a loaded year, for year-end runs


@pytest.fixture(scope="module")
def loaded_year(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fund whose whole year is loaded and December closed, in SQLite: base/{fund,home,store.db}."""
    base = tmp_path_factory.mktemp("loaded-year")
    _ok(cli(base / "home", *monthly(_fund(base), "2021-12", _sqlite_url(base / "store.db"))))
    return base


@pytest.fixture
def year(loaded_year: Path, tmp_path: Path) -> tuple[Path, Path, str]:
    """A private copy of the loaded year: (fund dir, home, db url)."""
    work = tmp_path / "work"
    shutil.copytree(loaded_year, work)
    return work / "fund", work / "home", _sqlite_url(work / "store.db")


# ------------------------------------------------------------------ mounts (root only)


def _mount(*args: str) -> bool:
    return subprocess.run(["mount", *args], capture_output=True, timeout=60).returncode == 0


@pytest.fixture
def mounts() -> Iterator[list[Path]]:
    """Mount points to unmount after the test, whatever happened."""
    points: list[Path] = []
    try:
        yield points
    finally:
        for p in reversed(points):
            subprocess.run(["umount", "-l", str(p)], capture_output=True, timeout=60)


def _small_tmpfs(mounts: list[Path], where: Path, size: str, *opts: str) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    if not _mount("-t", "tmpfs", "-o", ",".join([f"size={size}", *opts]), "tmpfs", str(where)):
        pytest.skip("cannot mount a tmpfs here (not root, or no CAP_SYS_ADMIN); the RLIMIT_FSIZE case covers it")
    mounts.append(where)
    return where


def _limit_file_size() -> None:
    """In the child before exec: writes past FSIZE_LIMIT fail with EFBIG instead of killing it."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (FSIZE_LIMIT, FSIZE_LIMIT))


# ================================================================== a. disk full


@pytest.mark.parametrize("how", ["rlimit_fsize", "tmpfs"])
def test_disk_full_during_year_end_exits_3_and_leaves_no_partial_report(year, tmp_path: Path, mounts, how: str):
    fund, home, db = year
    if how == "tmpfs":
        out = _small_tmpfs(mounts, tmp_path / "small", TMPFS_SMALL) / "out"
        preexec = None
    else:
        out = tmp_path / "out"
        preexec = _limit_file_size
    outbox_before = _outbox_rows(db)
    fund_before = _tree(fund)

    proc = cli(home, *year_end(fund, out, db), preexec_fn=preexec)

    line = assert_infra_failure(proc, home)
    assert str(out) in line, line  # names where it could not write (the file, not a hidden temp name)
    assert not re.search(r"\.tmp\b|\.part\b", line), line
    # No partial output: not a truncated docx, not the charts written before it, no temporary file.
    assert not out.exists() or list(out.iterdir()) == [], sorted(p.name for p in out.iterdir())
    if how == "tmpfs":
        assert [p.name for p in out.parent.iterdir()] in ([], ["out"])
    assert _outbox_rows(db) == outbox_before  # no report mail queued for a report that was not written
    assert _tree(fund) == fund_before and not (fund / "quarantine").exists()

    # Space again (a larger tmpfs, or no limit): the rerun writes everything.
    if how == "tmpfs":
        assert _mount("-o", "remount,size=16m", str(out.parent))
    _ok(cli(home, *year_end(fund, out, db)))
    assert {p.name for p in out.iterdir()} == OUTPUT_NAMES
    assert _temps(out.parent) == [] and _temps(home) == []


# ================================================================== b. PostgreSQL backend terminated


class _BackendKiller(threading.Thread):
    """Once the loader has committed its first file, terminate every other backend of its
    database, again and again, until ``stop`` is set: the run loses its connection mid-load
    (a reconnect is terminated too)."""

    def __init__(self, url: str, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.url, self.stop = url, stop
        self.terminated = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        engine = create_engine(store.normalise_url(self.url), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:  # this one connection is pg_backend_pid(), spared
                while not self.stop.is_set():
                    try:
                        loaded = conn.execute(text("SELECT count(*) FROM source_file")).scalar_one()
                    except Exception:  # noqa: BLE001 - the schema is not there yet
                        loaded = 0
                    if loaded:
                        self.terminated += len(
                            conn.execute(
                                text(
                                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                                )
                            ).all()
                        )
                    self.stop.wait(0.05)
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            self.error = exc
        finally:
            engine.dispose()


def test_postgresql_backend_terminated_mid_load_then_rerun_equals_a_clean_run(pg_url: str, tmp_path: Path, clean_runs):
    month = "2021-06"  # 13 files to load and 6 alerts to queue: the kill lands among them
    fund, home = _fund(tmp_path), tmp_path / "home"
    stop = threading.Event()
    killer = _BackendKiller(pg_url, stop)
    proc = subprocess.Popen(
        _cmd(*monthly(fund, month, pg_url)),
        env=_env(home),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    killer.start()
    try:
        stdout, stderr = proc.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        stop.set()
        killer.join()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert killer.error is None, killer.error
    assert killer.terminated >= 1  # the loader really lost its backend
    done = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    if done.returncode != 0:  # 0 only if every kill landed between transactions and the pool reconnected
        assert_infra_failure(done, home, "数据库")
    assert_no_partial_file(pg_url)

    _ok(cli(home, *monthly(fund, month, pg_url)))
    clean = clean_runs("postgresql", month)
    assert _snapshot(pg_url) == clean["snapshot"]
    assert _outbox_rows(pg_url) == clean["outbox"]  # each alert once, still pending (--no-send)
    assert assert_no_partial_file(pg_url) == 13
    assert not (fund / "quarantine").exists() or list((fund / "quarantine").iterdir()) == []


# ================================================================== c. database unreachable


@pytest.mark.parametrize("command", ["monthly", "year-end"])
def test_database_unreachable_exits_3_with_one_line_and_touches_nothing(tmp_path: Path, command: str):
    fund, home, out = _fund(tmp_path), tmp_path / "home", tmp_path / "out"
    fund_before = _tree(fund)
    db = "postgresql://postgres@127.0.0.1:1/x"  # nothing listens on port 1
    args = monthly(fund, "2021-03", db) if command == "monthly" else year_end(fund, out, db)

    proc = cli(home, *args)

    assert_infra_failure(proc, home, "数据库")
    assert _tree(fund) == fund_before  # no file quarantined or moved
    assert not out.exists() or list(out.iterdir()) == []
    assert not (home / "archive").exists() or _tree(home / "archive") == {}


# ================================================================== d. kill -9 mid-run, then rerun


def test_kill_9_mid_load_then_rerun_equals_a_clean_run(any_db: tuple[str, str], tmp_path: Path, clean_runs):
    engine, url = any_db
    month = "2021-12"  # the whole year's 26 files in one run: the biggest load
    fund, home = _fund(tmp_path), tmp_path / "home"
    proc = subprocess.Popen(
        _cmd(*monthly(fund, month, url)),
        env=_env(home),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with _file_counter(url) as loaded_files:
            while proc.poll() is None and loaded_files() < 1:
                time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=RUN_TIMEOUT_S)
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    loaded = assert_no_partial_file(url)
    assert 1 <= loaded < 26  # killed mid-load: some files whole, the rest absent

    _ok(cli(home, *monthly(fund, month, url)))
    clean = clean_runs(engine, month)
    assert _snapshot(url) == clean["snapshot"]
    assert _outbox_rows(url) == clean["outbox"]  # no duplicated (or lost) outbox row
    assert assert_no_partial_file(url) == 26
    assert not (fund / "quarantine").exists() or list((fund / "quarantine").iterdir()) == []


# ================================================================== e. output directory not writable


def _file_in_the_way(target: Path, mounts: list[Path]) -> Path:
    target.mkdir()
    blocker = target / "not-a-dir"
    blocker.write_text("a file where the output directory should be\n", encoding="utf-8")
    return blocker / "out"  # mkdir fails with ENOTDIR, whoever runs it (root included)


def _read_only_fs(target: Path, mounts: list[Path]) -> Path:
    # Root bypasses mode bits (a 0500 directory would not stop it); a read-only mount stops everyone: EROFS.
    return _small_tmpfs(mounts, target, "1m", "ro") / "out"


@pytest.mark.parametrize("make_out", [_file_in_the_way, _read_only_fs], ids=["file-in-the-way", "read-only-fs"])
def test_unwritable_output_directory_exits_3_and_queues_nothing(year, tmp_path: Path, mounts, make_out):
    fund, home, db = year
    target = tmp_path / "target"
    out = make_out(target, mounts)
    outbox_before, target_before = _outbox_rows(db), _tree(target)

    proc = cli(home, *year_end(fund, out, db))

    assert_infra_failure(proc, home)
    assert not out.exists() and _tree(target) == target_before
    assert _outbox_rows(db) == outbox_before
