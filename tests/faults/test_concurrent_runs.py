"""Issue #13 item 9: two runs of the same fund and month at once. The loser
used to crash on the source_file unique key; now the second waits for the
fund's lock and finds the work done, or (waiting too long) exits cleanly
saying another run holds the fund, having changed nothing."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest

from budget_monitor import store
from budget_monitor.cli import main
from budget_monitor.locks import FundBusy, fund_lock
from budget_monitor.pipeline import load_month, load_months, run_monthly

REPO = Path(__file__).resolve().parents[2]
JIANGMEN = REPO / "examples" / "jiangmen-2021"
CODE = "JM-2021-YPJG"


def _fund(tmp_path: Path) -> Path:
    dest = tmp_path / JIANGMEN.name
    shutil.copytree(JIANGMEN, dest)
    return dest


def test_two_concurrent_runs_of_a_fund_month_load_each_file_once(db_url: str, tmp_path: Path) -> None:
    fund = _fund(tmp_path)
    store.open_store(db_url)  # migrated once, before the race
    results: dict[str, object] = {}
    start = threading.Barrier(2)

    def run(name: str) -> None:
        start.wait()
        try:
            results[name] = run_monthly(fund, "2021-12", db_url)
        except BaseException as exc:  # noqa: BLE001 - recorded for the assertion
            results[name] = exc

    threads = [threading.Thread(target=run, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not any(isinstance(r, BaseException) for r in results.values()), results
    statuses = sorted(tuple(sorted({f.status for f in r.load.files})) for r in results.values())
    assert statuses == [("loaded",), ("skipped",)]  # the second found every file loaded
    engine = store.open_store(db_url)
    alone = tmp_path / "alone.db"
    run_monthly(_fund(tmp_path / "x"), "2021-12", f"sqlite:///{alone}")
    assert store.snapshot(engine, CODE) == store.snapshot(store.open_store(f"sqlite:///{alone}"), CODE)


def test_a_run_that_waits_too_long_changes_nothing_and_says_so(
    db_url: str, tmp_path: Path, monkeypatch, capsys
) -> None:
    fund = _fund(tmp_path)
    engine = store.open_store(db_url)
    monkeypatch.setenv("BUDGET_MONITOR_LOCK_WAIT_S", "0.3")
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with fund_lock(engine, CODE, wait_s=5):
            held.set()
            release.wait(60)

    t = threading.Thread(target=holder)
    t.start()
    try:
        assert held.wait(30)
        with pytest.raises(FundBusy):
            load_month(fund, "2021-01", db_url)
        assert main(["monthly", str(fund), "--month", "2021-01", "--db", db_url, "--no-send"]) == 5
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert line.startswith(f"未运行：另一个运行正在处理资金 {CODE}（已等待 ") and "本次未做任何改动" in line
        # A batch load marks that fund busy and leaves it alone.
        (only,) = load_months([fund], "2021-01", db_url)
        assert isinstance(only.error, FundBusy) and only.result is None
        assert store.table_counts(engine, CODE)["payments"] == 0
        assert not (fund / "quarantine").exists()
    finally:
        release.set()
        t.join(timeout=60)
    assert load_month(fund, "2021-01", db_url).files  # free again: it runs
