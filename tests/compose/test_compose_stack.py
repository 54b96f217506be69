"""The real docker-compose.yaml, up on this machine: the monthly close end to end.

The stack is the operator's (docs/operations.md §1): the compose file
unchanged plus tests/compose/standin.override.yaml (stand-in images only;
no registry is reachable here), a .env from docker/make_env.py, the
example fund dropped into the mounted inbox, runs triggered through the
REST API. Order matters: the tests share one stack (module fixture).
The users are the .env's (admin, and BUDGET_MONITOR_USERS: viewer,
approver, contact), each logging in with its own password.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from budget_monitor_airflow.responder import over_http
from compose_stack import REPO, log, run

pytestmark = pytest.mark.compose
MONTHLY, YEAR_END = "budget_monthly_monitor", "budget_year_end_report"
EXAMPLE = REPO / "examples" / "jiangmen-2021"
AIRFLOW_UID = 50000


def _drop_fund(stack) -> Path:
    fund = stack.work / "data" / "inbox" / EXAMPLE.name
    shutil.copytree(EXAMPLE, fund)
    for p in [fund, *fund.rglob("*")]:  # the Airflow user owns what it reads and moves
        os.chown(p, AIRFLOW_UID, 0)
    return fund


def _worker_hostname(stack) -> str:
    cid = stack.container("airflow-worker")
    return run(["docker", "inspect", "-f", "{{.Config.Hostname}}", cid], timeout=30).stdout.strip()


def test_every_service_healthy_and_published_on_loopback_only(stack):
    assert set(stack.health().values()) == {"healthy"}, stack.health()
    for svc, port in (("airflow-apiserver", 8080), ("mailpit", 8025)):
        bound = run(["docker", "port", stack.container(svc), f"{port}/tcp"], timeout=30).stdout.split()
        assert bound and all(b.startswith("127.0.0.1:") for b in bound), (svc, bound)
    # The init container finished and handed the data folders to the Airflow user, not the checkout.
    assert (stack.work / "data" / "inbox").stat().st_uid == AIRFLOW_UID
    assert (REPO / "dags").stat().st_uid != AIRFLOW_UID


def test_monthly_close_runs_on_the_celery_worker_and_mails_the_alerts(stack):
    _drop_fund(stack)
    stack.http("PATCH", f"/api/v2/dags/{MONTHLY}", {"is_paused": False})
    stack.http("PATCH", f"/api/v2/dags/{YEAR_END}", {"is_paused": False})
    t = time.monotonic()
    run_id = stack.trigger(MONTHLY, {"month": "2021-06"})
    dr = stack.wait_run(MONTHLY, run_id)
    tis = stack.task_instances(MONTHLY, run_id)
    log(f"2021-06 close: {dr['state']} in {time.monotonic() - t:.0f} s")
    assert dr["state"] == "success", [(ti["task_id"], ti["state"]) for ti in tis]
    # Every task ran in the Celery worker's container (its hostname), none elsewhere.
    worker = _worker_hostname(stack)
    assert {ti["hostname"] for ti in tis} == {worker}, [(ti["task_id"], ti["hostname"]) for ti in tis]
    assert {ti["task_id"] for ti in tis} >= {
        "plan_month",
        "discover_funds",
        "load_funds",
        "close_funds",
        "send_alerts",
        "publish_close",
    }
    # The month's alerts reached the catcher through smtp_default.
    subjects = [m["Subject"] for m in stack.mails()]
    assert any("2021年6月" in s for s in subjects), subjects
    # The worker's task log is readable from the api-server (UI / REST).
    close = next(ti for ti in tis if ti["task_id"] == "close_funds")  # one batch: map index 0
    text = stack.http(
        "GET",
        f"/api/v2/dags/{MONTHLY}/dagRuns/{run_id}/taskInstances/close_funds/logs/{close['try_number']}"
        f"?map_index={close['map_index']}",
        raw=True,
    )
    assert "closed" in text, text[:2000]


def test_unpausing_started_a_scheduled_run_that_ends_green(stack):
    """Unpausing starts a run for the current month, with no fund of its year in the
    inbox: it must end green (and not hold manual runs behind max_active_runs=1)."""
    scheduled = [r for r in stack.runs(MONTHLY) if r["run_type"] == "scheduled"]
    for r in scheduled:
        if r["state"] not in ("success", "failed"):
            r = stack.wait_run(MONTHLY, r["dag_run_id"])
        assert r["state"] == "success", r


def test_quarantine_page_and_dashboard_answer_through_the_api_server(stack):
    assert stack.http("GET", "/budget-monitor/quarantine.json") == []
    assert stack.status("/budget-monitor/quarantine.json", auth=False) == 401
    assert stack.status("/budget-dashboard/") == 200
    # A viewer sees the pages and the runs, and can change nothing.
    assert stack.status("/budget-dashboard/", user="viewer") == 200
    assert stack.status(f"/api/v2/dags/{MONTHLY}/dagRuns", user="viewer") == 200
    body = {"logical_date": None, "conf": {"month": "2021-07"}}
    assert stack.status(f"/api/v2/dags/{MONTHLY}/dagRuns", method="POST", body=body, user="viewer") == 403


def _report_mails(stack) -> list[dict]:
    return [m for m in stack.mails() if any(a.endswith(".docx") for a in m.get("AttachmentNames", []))]


def test_december_close_is_approved_then_the_year_end_report_is_mailed(stack):
    """The December close starts the year-end run, which builds the draft and waits
    (Human-in-the-loop) for the approver: a viewer's and a unit contact's answers
    are refused (403) and nothing is mailed; the approver (BUDGET_MONITOR_APPROVERS)
    approves with its own login through the REST API; then the report is mailed."""
    t = time.monotonic()
    run_id = stack.trigger(MONTHLY, {"month": "2021-12"})
    assert stack.wait_run(MONTHLY, run_id)["state"] == "success"
    responder, client = over_http(stack.base, stack.passwords())
    try:
        deadline = time.monotonic() + 300
        while not (pending := [d for d in responder.pending() if d["task_instance"]["dag_id"] == YEAR_END]):
            assert time.monotonic() < deadline, ("no approval request", stack.runs(YEAR_END))
            time.sleep(3)
        (detail,) = pending
        ye_run = detail["task_instance"]["dag_run_id"]
        log(f"2021-12 close + draft, waiting for approval: {time.monotonic() - t:.0f} s")
        assert detail["task_instance"]["task_id"] == "approve_report"
        assert detail["assigned_users"] == [{"id": "approver", "name": "approver"}]
        out = stack.work / "data" / "reports" / "JM-2021-YPJG" / "2021"
        assert json.loads((out / "self_evaluation.json").read_text(encoding="utf-8"))["draft"] is True
        assert responder.respond(detail, "viewer", "viewer", ["批准"], {"comment": ""}) == 403
        assert responder.respond(detail, "contact", "user", ["批准"], {"comment": ""}) == 403  # not an approver
        assert not _report_mails(stack), [m["Subject"] for m in stack.mails()]
        assert responder.respond(detail, "approver", "user", ["批准"], {"comment": "同意"}) == 200
    finally:
        client.close()
    dr = stack.wait_run(YEAR_END, ye_run)
    log(f"2021-12 close + year-end approved and mailed: {dr['state']} in {time.monotonic() - t:.0f} s")
    assert dr["state"] == "success", [(ti["task_id"], ti["state"]) for ti in stack.task_instances(YEAR_END, ye_run)]
    assert dr["run_type"] == "asset_triggered"
    final = json.loads((out / "self_evaluation.json").read_text(encoding="utf-8"))
    assert "draft" not in final and final["approval"]["decided_by"] == "approver"
    names = {p.name for p in out.rglob("*") if p.is_file()}
    assert any(n.endswith(".docx") for n in names) and any(n.endswith(".xlsx") for n in names), names
    assert len(_report_mails(stack)) == 1, [m["Subject"] for m in stack.mails()]


def test_the_store_has_its_own_role_and_no_way_into_airflows_database(stack):
    def psql(user: str, db: str, sql: str):  # the local socket: trust, as the image's init uses
        return stack.compose(
            "exec", "-T", "postgres", "psql", "-U", user, "-d", db, "-tAc", sql, timeout=60, check=False
        )

    # Owner of its own database, holding the store's tables, and nothing more.
    pw = stack.env["BUDGET_MONITOR_DB_PASSWORD"]
    ans = stack.compose(
        "exec",
        "-T",
        "-e",
        f"PGPASSWORD={pw}",
        "postgres",
        "psql",
        "-h",
        "127.0.0.1",
        "-U",
        "budget_monitor",
        "-d",
        "budget_monitor",
        "-tAc",
        "select count(*) from pg_tables where tableowner = 'budget_monitor'",
        timeout=60,
    )
    assert int(ans.stdout.strip()) > 0
    ans = psql(
        "airflow",
        "airflow",
        "select rolsuper or rolcreatedb or rolcreaterole from pg_roles where rolname = 'budget_monitor'",
    )
    assert ans.stdout.strip() == "f", ans.stdout + ans.stderr
    ans = stack.compose(
        "exec",
        "-T",
        "-e",
        f"PGPASSWORD={pw}",
        "postgres",
        "psql",
        "-h",
        "127.0.0.1",
        "-U",
        "budget_monitor",
        "-d",
        "airflow",
        "-tAc",
        "select 1",
        timeout=60,
        check=False,
    )
    assert ans.returncode != 0 and "permission denied" in ans.stderr, ans.stderr


def test_init_refuses_a_placeholder_secret(stack):
    """The same init with .env.example's Fernet placeholder stops before touching the database."""
    ans = stack.compose(
        "run",
        "--rm",
        "--no-deps",
        "-e",
        "AIRFLOW__CORE__FERNET_KEY=change-me-fernet-key",
        "airflow-init",
        timeout=180,
        check=False,
    )
    assert ans.returncode != 0
    assert "refused: AIRFLOW__CORE__FERNET_KEY" in ans.stdout + ans.stderr, ans.stdout[-2000:] + ans.stderr[-2000:]
