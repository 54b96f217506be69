"""A month with nothing to do is not a failure (issue #17, item 3).

Unpausing the monthly DAG starts a scheduled run for the current month. With
no fund directory of that year in the inbox, ``discover_funds`` used to raise
(retried every 5 minutes) and ``close_month`` (``all_done``) then failed with
``TypeError: 'NoneType' object is not iterable``; with ``max_active_runs=1``
that run held every manual run in the queue. The close is now mapped per
batch (``close_funds``, issue #16 item 5): with no batch it is skipped, and
when ``discover_funds`` fails Airflow never expands it (``upstream_failed``). Run through the DAG with
``dag.test()``, as in test_monthly_dag_run.py.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pendulum
import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "jiangmen-2021"
MONTHLY = "budget_monthly_monitor"

pytestmark = pytest.mark.airflow


@pytest.fixture
def inbox_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, airflow_db):
    """An inbox holding the 2021 example fund, a private store; SMTP unused (nothing to send)."""
    inbox = tmp_path / "inbox"
    shutil.copytree(EXAMPLE, inbox / EXAMPLE.name)
    monkeypatch.setenv("BUDGET_MONITOR_FUNDS_DIR", str(inbox))
    monkeypatch.setenv("BUDGET_MONITOR_DB_URL", f"sqlite:///{tmp_path / 'store.db'}")
    monkeypatch.setenv("BUDGET_MONITOR_REPORTS_DIR", str(tmp_path / "reports"))
    # A dead SMTP port: an empty outbox must not even connect.
    monkeypatch.setenv(
        "AIRFLOW_CONN_SMTP_DEFAULT",
        '{"conn_type": "smtp", "host": "127.0.0.1", "port": 9, "extra": {"disable_ssl": true,'
        ' "disable_tls": true, "from_email": "bm@example.cn"}}',
    )
    yield inbox
    from budget_monitor import store

    store.dispose_all()


def _states(dr) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}


def _log(dr, task_id: str) -> str:
    import os

    home = Path(os.environ["AIRFLOW_HOME"])
    logs = home.glob(f"logs/dag_id={dr.dag_id}/run_id={dr.run_id}/task_id={task_id}/**/*.log")
    return "\n".join(p.read_text(errors="replace") for p in sorted(logs))


def test_scheduled_month_without_a_fund_of_its_year_ends_green(dagbag, inbox_env, caplog):
    # A run dated 2026-12-05 closes 2026-11; the inbox holds only the 2021 fund.
    # The Params' defaults, as a scheduled run has them (dag.test(run_conf=...) of an
    # earlier test in the session leaves its values on the shared DAG object).
    dr = dagbag.dags[MONTHLY].test(
        logical_date=pendulum.datetime(2026, 12, 5, 6, tz="Asia/Shanghai"), run_conf={"month": "", "fund": ""}
    )

    states = _states(dr)
    assert str(dr.state) == "success", states
    assert states["discover_funds"] == "success", states
    assert states["load_funds"] == states["close_funds"] == "skipped", states
    assert states["publish_close"] == "skipped", states  # nothing closed: no monthly_close event
    assert "nothing to close for 2026-11: no 2026 fund directory" in caplog.text + _log(dr, "discover_funds")


def test_empty_inbox_ends_green(dagbag, inbox_env):
    shutil.rmtree(inbox_env / EXAMPLE.name)
    dr = dagbag.dags[MONTHLY].test(run_conf={"month": "2021-06", "fund": ""})
    assert str(dr.state) == "success", _states(dr)


def test_a_month_with_no_new_files_ends_green(dagbag, inbox_env):
    first = dagbag.dags[MONTHLY].test(run_conf={"month": "2021-03", "fund": ""})
    assert str(first.state) == "failed" or str(first.state) == "success"  # mails may fail (dead SMTP)
    assert _states(first)["close_funds"] == "success", _states(first)
    # Nothing new since: every file is skipped by its hash, the close is redone.
    again = dagbag.dags[MONTHLY].test(run_conf={"month": "2021-03", "fund": ""})
    states = _states(again)
    assert states["load_funds"] == "success" and states["close_funds"] == "success", states


def test_upstream_failure_leaves_close_unexpanded_without_type_error(dagbag, inbox_env, caplog, capsys):
    """A fund filter that matches nothing fails discover_funds at once (no retry);
    the mapped load and close are never expanded (upstream_failed, nothing run,
    no TypeError) and send_alerts (all_done) still flushes."""
    dr = dagbag.dags[MONTHLY].test(run_conf={"month": "2021-06", "fund": "no-such-fund"})

    states = _states(dr)
    assert states["discover_funds"] == "failed", states
    assert states["load_funds"] == states["close_funds"] == "upstream_failed", states
    assert states["publish_close"] == "upstream_failed", states
    assert states["send_alerts"] == "success", states
    assert str(dr.state) == "failed"
    text = caplog.text + _log(dr, "discover_funds") + _log(dr, "close_funds") + "".join(capsys.readouterr())
    assert "TypeError" not in text
    assert "matching 'no-such-fund'" in text, text[-2000:]
    assert dr.get_task_instance("discover_funds").try_number == 1  # not retried
