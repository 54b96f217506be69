"""The monthly DAG's pull step (``pull_funds``, mapped) with the treasury HTTP source, by ``dag.test()``.

Two funds in one batch, both pulling their payments from a real HTTP server
speaking the treasury export contract (tests/treasury_server.py); the token
comes from an Airflow connection. One fund's export answers 500: its pull
task fails naming it, the other fund still loads and closes, and the failed
fund is neither loaded nor closed (its alerts would be false).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from smtp_sink import SmtpSink
from treasury_server import TreasuryServer, payment

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "jiangmen-2021"
MONTHLY = "budget_monthly_monitor"
GOOD, DOWN, MONTH = "JM-2021-YPJG", "JM-2021-DOWN", "2021-03"

pytestmark = pytest.mark.airflow


@pytest.fixture
def treasury():
    srv = TreasuryServer(token="s3cret").start()
    srv.fault = lambda req: (500, "text/plain", b"down") if req.query.get("fund_code") == DOWN else None
    srv.records[("payments", GOOD, MONTH)] = [
        payment("440700ZF202103001", "12,000.00", "2021-03-02", memo="抽检费"),
        payment("440781ZF202103002", "3500.5", "2021-03-15", unit="台山市市场监督管理局", doc_no="江财工〔2021〕13号"),
        payment("440700ZF202103003", "800.00", "2021-03-30"),
    ]
    yield srv
    srv.stop()


def _fund(inbox: Path, name: str, code: str, source: dict) -> Path:
    d = inbox / name
    shutil.copytree(EXAMPLE, d, ignore=shutil.ignore_patterns("payments"))
    cfg = yaml.safe_load((d / "fund.yaml").read_text(encoding="utf-8"))
    cfg.update(code=code, source=source)
    (d / "fund.yaml").write_text(yaml.safe_dump(cfg, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return d


@pytest.fixture
def inbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, treasury: TreasuryServer, airflow_db):
    inbox = tmp_path / "inbox"
    good = _fund(inbox, "a-good", GOOD, {"kind": "http"})  # URL and token from the connection
    down = _fund(inbox, "b-down", DOWN, {"kind": "http", "url": treasury.url, "timeout_s": 5})
    sink = SmtpSink().start()
    monkeypatch.setenv("BUDGET_MONITOR_FUNDS_DIR", str(inbox))
    monkeypatch.setenv("BUDGET_MONITOR_DB_URL", f"sqlite:///{tmp_path / 'store.db'}")
    monkeypatch.setenv("BUDGET_MONITOR_REPORTS_DIR", str(tmp_path / "reports"))
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", sink.connection_json())
    monkeypatch.setenv(
        "AIRFLOW_CONN_BUDGET_MONITOR_TREASURY",
        json.dumps({"conn_type": "http", "host": treasury.url, "password": "s3cret"}),
    )
    yield {"good": good, "down": down, "db": f"sqlite:///{tmp_path / 'store.db'}"}
    sink.stop()
    from budget_monitor import store

    store.dispose_all()


def _states(dr) -> dict[tuple[str, int], str]:
    return {(ti.task_id, ti.map_index): str(ti.state) for ti in dr.get_task_instances()}


def _log(dr, task_id: str) -> str:
    import os

    home = Path(os.environ["AIRFLOW_HOME"])
    logs = home.glob(f"logs/dag_id={dr.dag_id}/run_id={dr.run_id}/task_id={task_id}/**/*.log")
    return "\n".join(p.read_text(errors="replace") for p in sorted(logs))


def test_a_failing_source_fails_its_pull_naming_the_fund_and_the_others_load(
    dagbag, inbox, treasury: TreasuryServer, caplog, capsys
):
    from budget_monitor import store

    dr = dagbag.dags[MONTHLY].test(run_conf={"month": MONTH, "fund": "", "funds_per_task": 100})

    states = _states(dr)
    assert states[("pull_funds", 0)] == "failed", states
    assert states[("pulled_funds", -1)] == "success", states
    assert states[("load_funds", 0)] == "success" and states[("close_funds", 0)] == "success", states
    assert states[("publish_close", -1)] == "upstream_failed", states  # the month is not complete
    assert str(dr.state) == "failed"
    # The task's error names the fund and why (the notifier tells ops with it).
    text = caplog.text + _log(dr, "pull_funds") + "".join(capsys.readouterr())
    assert f"1 fund(s) failed: {DOWN}: SourceError: {DOWN} {MONTH}" in text and "HTTP 500" in text, text[-3000:]

    # The good fund's payments came over HTTP (with the connection's token) and landed.
    engine = store.open_store(inbox["db"])
    pulled = inbox["good"] / "payments" / f"pulled_{GOOD}_{MONTH}.csv"
    assert pulled.is_file()
    vouchers = {row[0] for row in store.snapshot(engine, GOOD)["payments"]}
    assert vouchers == {"440700ZF202103001", "440781ZF202103002", "440700ZF202103003"}
    assert MONTH in store.closed_months(engine, GOOD)
    assert any(r.headers.get("Authorization") == "Bearer s3cret" for r in treasury.requests)
    # The failed fund: nothing written, nothing loaded, not closed.
    assert not (inbox["down"] / "payments").exists()
    assert store.snapshot(engine, DOWN)["payments"] == [] and store.closed_months(engine, DOWN) == []
