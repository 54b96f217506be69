"""plugins/: the Airflow plugin loads, and the glue's pure parts behave."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def test_plugin_loads_with_its_quarantine_app():
    from airflow import plugins_manager

    apps, _ = plugins_manager.get_fastapi_plugins()
    assert not plugins_manager.get_import_errors()
    assert [a["url_prefix"] for a in apps if a["name"] == "budget-monitor quarantine"] == ["/budget-monitor"]


def test_quarantine_listing_and_page(tmp_path: Path):
    from budget_monitor_airflow.quarantine_view import quarantine_reports, render_page

    q = tmp_path / "jiangmen-2021" / "quarantine"
    q.mkdir(parents=True)
    report = {
        "file": "payments/x.csv",
        "reason": "支付金额 <壹仟元> 不是金额",
        "rejected_at": "2021-07-05T06:00:01+08:00",
    }
    (q / "20210705T060001_ab12cd34_x.csv.report.json").write_text(json.dumps(report, ensure_ascii=False), "utf-8")
    listed = quarantine_reports(tmp_path)
    assert [(r["fund"], r["file"], r["reason"]) for r in listed] == [
        ("jiangmen-2021", "payments/x.csv", report["reason"])
    ]
    page = render_page(listed)
    assert "&lt;壹仟元&gt;" in page and "<壹仟元>" not in page  # escaped
    assert "隔离区为空" in render_page([])


def test_quarantine_page_links_and_serves_the_files_data_docs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The quarantine page links a rejected file's Data Docs page and serves the
    fund's docs itself (no CDN: the pages load nothing from outside)."""
    from budget_monitor.validate import Failure, ValidationReport
    from budget_monitor.validation import docs
    from budget_monitor_airflow.quarantine_view import create_app, quarantine_reports, render_page
    from fastapi.testclient import TestClient

    from airflow.api_fastapi.core_api.security import get_user

    from test_data_docs import assert_offline

    fund = tmp_path / "jiangmen-2021"
    (fund / "quarantine").mkdir(parents=True)
    name = "20210705T060001_ab12cd34_x.csv"
    msg = "payments/x.csv 第2行 列“支付金额”: 壹仟元 不是金额（规则 PAY-002）"
    report = ValidationReport(
        "payments/x.csv", "/in/x.csv", "payments", "ab12cd34" * 8, 1,
        [Failure("PAY-002", "fatal", "格式", "amount_fen", "支付金额", 2, "壹仟元", msg)], [], {"PAY-002": 1},
    )  # fmt: skip
    body = {**report.to_dict(), "rejected_at": "2021-07-05T06:00:01+08:00", "quarantined_as": name}
    (fund / "quarantine" / f"{name}.report.json").write_text(json.dumps(body, ensure_ascii=False), "utf-8")
    (other := tmp_path / "other-fund" / "quarantine").mkdir(parents=True)  # rejected before Data Docs existed
    (other / "20200101T000000_00000000_y.csv.report.json").write_text(json.dumps({"kind": "payments"}), "utf-8")
    assert [r["docs"] for r in quarantine_reports(tmp_path)] == [None, None]  # not built yet

    docs.record(fund, report, outcome="rejected", page=name, fund_code="JM-2021-YPJG", fund_title="药品监督管理")
    docs.build_site(fund)
    listed = {r["fund"]: r for r in quarantine_reports(tmp_path)}
    assert listed["jiangmen-2021"]["docs"] == f"validations/payments/{name}.html"
    assert listed["other-fund"]["docs"] is None
    page = render_page(list(listed.values()))
    href = f"docs/jiangmen-2021/validations/payments/{name}.html"
    assert f"href='{href}'" in page and "校验报告" in page

    monkeypatch.setenv("BUDGET_MONITOR_FUNDS_DIR", str(tmp_path))
    app = create_app()
    app.dependency_overrides[get_user] = lambda: None  # logged in
    with TestClient(app) as client:
        served = client.get(f"/{href}")
        assert served.status_code == 200 and "壹仟元" in served.text and "“支付金额”应为可识别的金额" in served.text
        assert "default-src 'none'" in served.headers["content-security-policy"]
        assert "数据校验记录" in client.get("/docs/jiangmen-2021/").text
        assert "校验规则" in client.get("/docs/jiangmen-2021/rules.html").text
        (tmp_path / "secret.html").write_text("secret", encoding="utf-8")
        for bad in ("/docs/jiangmen-2021/../../secret.html", "/docs/jiangmen-2021/%2e%2e/%2e%2e/secret.html",
                    "/docs/..%2fsecret.html/index.html", "/docs/jiangmen-2021/results/payments/x.json",
                    "/docs/other-fund/index.html"):  # fmt: skip
            assert client.get(bad).status_code == 404, bad
    assert_offline(fund / "data_docs")


def test_rejection_mail_names_every_file_and_reason():
    from budget_monitor_airflow.errors import FilesRejected, FundRejection
    from budget_monitor_airflow.notifier import rejection_mail

    rej = FundRejection(
        "JM-2021-YPJG",
        "药品监督管理",
        "2021-06",
        ["caiwu@example.cn"],
        "/in/jm/quarantine",
        [
            {"name": "payments/a.csv", "reason": "第3行 支付金额 壹仟元 不是金额"},
            {"name": "outputs/b.csv", "reason": "第2行 三级指标 不在目标表中"},
        ],
    )
    subject, body = rejection_mail(rej)
    assert "2021-06" in subject and "退回" in subject
    for f in rej.files:
        assert f["name"] in body and f["reason"] in body
    exc = FilesRejected([rej])
    assert "壹仟元" in str(exc) and exc.rejections == [rej]


def test_failure_notifier_leaves_rejections_to_the_outbox_and_tells_ops_the_rest(monkeypatch: pytest.MonkeyPatch):
    """The finance office's rejection notice is queued by pipeline.load_month and sent by
    send_alerts: the notifier must not mail it a second time. Technical failures go to ops."""
    from budget_monitor_airflow import notifier
    from budget_monitor_airflow.errors import FilesRejected, FundFailure, FundRejection, FundsFailed

    sent = []
    monkeypatch.setattr(notifier, "send_html", lambda to, subject, body, **kw: sent.append((list(to), subject)))
    monkeypatch.delenv("BUDGET_MONITOR_OPS_EMAIL", raising=False)
    rej = FundRejection("F1", "资金一", "2021-06", ["a@example.cn"], "/q", [{"name": "p.csv", "reason": "r"}])
    notifier.RejectionNotifier().notify({"exception": FilesRejected([rej])})
    assert sent == []  # in the outbox already
    notifier.RejectionNotifier().notify({"exception": RuntimeError("db down")})
    assert sent == []  # technical failure, no ops address: log only

    monkeypatch.setenv("BUDGET_MONITOR_OPS_EMAIL", "ops@example.cn")
    notifier.RejectionNotifier().notify({"exception": FilesRejected([rej])})
    assert sent == []  # still the outbox's job, ops address or not
    notifier.RejectionNotifier().notify({"exception": RuntimeError("db down")})
    assert [to for to, _ in sent] == [["ops@example.cn"]]
    sent.clear()
    # fund.yaml unreadable: no finance-office address known, ops gets the reason.
    broken = FundRejection("broken", "broken", "2021-06", [], "", [{"name": "fund.yaml", "reason": "bad"}])
    notifier.RejectionNotifier().notify({"exception": FilesRejected([broken])})
    assert sent == [(["ops@example.cn"], "【预算执行监控】broken 2021-06 数据文件被退回")]
    sent.clear()
    # A batch with a rejection and a technical failure: ops hears of the failure once.
    failure = FundFailure("F2", "IntegrityError: duplicate key")
    notifier.RejectionNotifier().notify({"exception": FilesRejected([rej], [failure])})
    assert len(sent) == 1 and sent[0][0] == ["ops@example.cn"] and "任务失败" in sent[0][1]
    sent.clear()
    notifier.RejectionNotifier().notify({"exception": FundsFailed([failure])})
    assert [to for to, _ in sent] == [["ops@example.cn"]]


@pytest.mark.parametrize(
    ("conn", "url"),
    [
        (
            {
                "conn_type": "postgres",
                "host": "db",
                "port": 5432,
                "login": "bm",
                "password": "p@ss/word",
                "schema": "budget_monitor",
            },
            "postgresql+psycopg://bm:p%40ss%2Fword@db:5432/budget_monitor",
        ),
        ({"conn_type": "sqlite", "host": "/data/bm.db"}, "sqlite:////data/bm.db"),
        ({"conn_type": "generic", "extra": {"sqlalchemy_url": "duckdb:///x.db"}}, "duckdb:///x.db"),
    ],
)
def test_store_url_from_an_airflow_connection(conn, url):
    from airflow.sdk import Connection
    from budget_monitor_airflow.settings import connection_url

    c = Connection(
        conn_id="budget_monitor_db",
        conn_type=conn["conn_type"],
        host=conn.get("host"),
        port=conn.get("port"),
        login=conn.get("login"),
        password=conn.get("password"),
        schema=conn.get("schema"),
        extra=json.dumps(conn.get("extra", {})),
    )
    assert connection_url(c) == url


def test_quarantine_app_requires_a_logged_in_user():
    from budget_monitor_airflow.quarantine_view import create_app
    from fastapi.testclient import TestClient

    with TestClient(create_app()) as client:
        assert client.get("/quarantine").status_code == 401
        assert client.get("/quarantine.json").status_code == 401


def test_a_broken_fund_yaml_fails_only_its_own_fund(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Discovery keeps going; the broken fund's load fails with the reason, for ops."""
    import shutil

    from budget_monitor_airflow.errors import FilesRejected
    from budget_monitor_airflow.monthly import discover, load_batch
    from budget_monitor_airflow.year_end import fund_dirs

    example = Path(__file__).resolve().parents[2] / "examples" / "jiangmen-2021"
    shutil.copy(example / "fund.yaml", (tmp_path / "good").mkdir() or tmp_path / "good" / "fund.yaml")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "fund.yaml").write_text("code: X\nyear: 二〇二一\n", encoding="utf-8")
    monkeypatch.setenv("BUDGET_MONITOR_FUNDS_DIR", str(tmp_path))

    assert [Path(d).name for d in discover("2021-06")] == ["broken", "good"]
    assert [Path(d).name for d in fund_dirs(2021)] == ["good"]
    with pytest.raises(FilesRejected) as exc:
        load_batch([str(tmp_path / "broken")], "2021-06")
    (rej,) = exc.value.rejections
    assert rej.files[0]["name"] == "fund.yaml" and "fund.yaml" in rej.files[0]["reason"]


def test_year_end_reports_only_after_a_december_close():
    from types import SimpleNamespace

    import pendulum
    from budget_monitor_airflow.assets import MONTHLY_CLOSE
    from budget_monitor_airflow.year_end import year_from_context

    def ctx(*months, year=None):
        events = {MONTHLY_CLOSE: [SimpleNamespace(extra={"year": 2021, "month": m}) for m in months]}
        return {
            "params": {"year": year},
            "triggering_asset_events": events if months else {},
            "logical_date": pendulum.datetime(2022, 3, 1, tz="Asia/Shanghai"),
        }

    assert year_from_context(ctx(6)) is None  # June close: nothing to do
    assert year_from_context(ctx(11, 12)) == 2021  # events batched into one run
    assert year_from_context(ctx(year=2020)) == 2020  # manual, Param
    assert year_from_context(ctx()) == 2021  # manual, previous year


def _fake_load_steps(failing: dict[str, BaseException]):
    """pipeline._load_steps stand-in (what load_months runs per fund): raises for the
    named fund dirs (a MonthRejected becomes its rejected result), loads nothing for the others."""
    from budget_monitor.pipeline import LoadResult, MonthRejected

    calls: list[str] = []

    def load_steps(engine, cfg, fund_dir, month):
        calls.append(Path(fund_dir).name)
        exc = failing.get(Path(fund_dir).name)
        if isinstance(exc, MonthRejected):
            return exc.result
        if exc is not None:
            raise exc
        return LoadResult(cfg.code, month)
        yield  # a generator, like the real one

    return load_steps, calls


def _funds(tmp_path: Path, *names: str) -> list[str]:
    import shutil

    example = Path(__file__).resolve().parents[2] / "examples" / "jiangmen-2021"
    for name in names:
        (tmp_path / name).mkdir()
        shutil.copy(example / "fund.yaml", tmp_path / name / "fund.yaml")
    return [str(tmp_path / n) for n in names]


def test_unexpected_error_of_one_fund_does_not_abort_the_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    """A store IntegrityError for one fund: the batch's other funds still load, the error is
    logged with its traceback, and the task fails at the end naming the fund, retryably."""
    import logging

    from airflow.sdk.exceptions import AirflowFailException
    from budget_monitor import pipeline
    from budget_monitor_airflow.errors import FundsFailed
    from budget_monitor_airflow.monthly import load_batch
    from sqlalchemy.exc import IntegrityError

    boom = IntegrityError("INSERT INTO payment ...", {}, Exception("UNIQUE constraint failed: payment.voucher_no"))
    fake, calls = _fake_load_steps({"a-fund": boom, "c-fund": RuntimeError("disk full")})
    monkeypatch.setattr(pipeline, "_load_steps", fake)
    dirs = _funds(tmp_path, "a-fund", "b-fund", "c-fund")

    with caplog.at_level(logging.ERROR), pytest.raises(FundsFailed) as exc:
        load_batch(dirs, "2021-06")
    assert calls == ["a-fund", "b-fund", "c-fund"]  # the funds after the failure were loaded
    assert [f.fund for f in exc.value.failures] == ["a-fund", "c-fund"]
    assert "a-fund" in str(exc.value) and "c-fund" in str(exc.value) and "IntegrityError" in str(exc.value)
    assert not isinstance(exc.value, AirflowFailException)  # Airflow retries it
    assert "Traceback" in caplog.text and "UNIQUE constraint failed" in caplog.text


def test_rejection_and_technical_failure_in_one_batch_fail_without_retry_naming_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A retry would no longer see the quarantined file and would pass, publishing the
    month (December: the year end) despite the rejection: so no retry, both reported."""
    from budget_monitor import pipeline
    from budget_monitor_airflow.errors import FilesRejected
    from budget_monitor_airflow.monthly import load_batch

    result = pipeline.LoadResult(
        "JM-2021-YPJG",
        "2021-06",
        [pipeline.FileOutcome("payments", "payments/x.csv", "rejected", reason="支付金额 壹仟元 不是金额")],
    )
    fake, calls = _fake_load_steps({"a-fund": pipeline.MonthRejected(result), "b-fund": OSError("store down")})
    monkeypatch.setattr(pipeline, "_load_steps", fake)

    with pytest.raises(FilesRejected) as exc:
        load_batch(_funds(tmp_path, "a-fund", "b-fund", "c-fund"), "2021-06")
    assert calls == ["a-fund", "b-fund", "c-fund"]
    (rej,) = exc.value.rejections
    assert rej.files == [{"name": "payments/x.csv", "reason": "支付金额 壹仟元 不是金额"}]
    assert [f.fund for f in exc.value.failures] == ["b-fund"]
    assert "壹仟元" in str(exc.value) and "b-fund" in str(exc.value) and "store down" in str(exc.value)


def test_close_of_one_fund_failing_does_not_stop_the_others(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from budget_monitor import pipeline
    from budget_monitor_airflow.errors import FundsFailed
    from budget_monitor_airflow.monthly import close

    closed = []

    def close_month(fund_dir, month, db_url=None, **kw):
        closed.append(Path(fund_dir).name)
        if Path(fund_dir).name == "a-fund":
            raise RuntimeError("no budget rows")
        return pipeline.CloseResult("JM", month, None, 0, None, None, [], [], 0, 0)

    monkeypatch.setattr(pipeline, "close_month", close_month)
    with pytest.raises(FundsFailed) as exc:
        close(_funds(tmp_path, "a-fund", "b-fund"), "2021-06")
    assert closed == ["a-fund", "b-fund"]
    assert [f.fund for f in exc.value.failures] == ["a-fund"]


def test_feedback_requests_are_assigned_to_the_unit_contacts_account(monkeypatch: pytest.MonkeyPatch):
    """核实反馈 (HITL, no mail): a unit's request is assigned to the account of its
    contact in the inbox's contacts.csv; a unit without one to anyone who may answer."""
    from budget_monitor_airflow import settings
    from budget_monitor_airflow.feedback import _users

    monkeypatch.setenv("BUDGET_MONITOR_FUNDS_DIR", str(Path(__file__).resolve().parents[2] / "examples"))
    assert settings.unit_users("台山市市场监督管理局") == ["taishan"]
    assert _users(settings.unit_users("开平市市场监督管理局")) == [{"id": "kaiping", "name": "kaiping"}]
    assert _users(settings.unit_users("恩平市市场监督管理局")) is None  # the finance office answers
