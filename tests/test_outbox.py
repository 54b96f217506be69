"""rules.md "Alerts": each alert is sent once per (fund, unit, period, kind); a failed
send is retried and never lost. On SQLite and PostgreSQL, against a real SMTP server."""

from __future__ import annotations

import email
import email.policy
import socket
import threading
from collections.abc import Iterator
from datetime import date
from email.message import EmailMessage

import pandas as pd
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from budget_monitor import store
from budget_monitor.alerts import build_alerts
from budget_monitor.config import PaceConfig
from budget_monitor.execution import compute_execution
from budget_monitor.outbox import SmtpMailer, enqueue, flush, pending_count

from seed_shaped import CFG

def alerts_of_june() -> list:
    """Fund and two units behind pace at the June close, Q2 lagging: 4 alerts."""
    alloc = pd.DataFrame(
        [("台山市市场监督管理局", date(2021, 1, 1), 1_000_000, "年初"), ("开平市市场监督管理局", date(2021, 1, 1), 1_000_000, "年初")],
        columns=["unit", "date", "amount_fen", "kind"],
    )
    pay = pd.DataFrame(
        [("台山市市场监督管理局", date(2021, 6, 1), 400_000), ("开平市市场监督管理局", date(2021, 6, 1), 100_000)],
        columns=["unit", "pay_date", "amount_fen"],
    )
    result = compute_execution(alloc, pay, year=2021, through_month=6, pace=PaceConfig())
    return build_alerts(CFG, result, 6)


class Inbox:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: ANN001 - aiosmtpd hook
        self.messages.append(envelope.content)
        return "250 OK"

    def subjects(self) -> list[str]:
        return [email.message_from_bytes(m, policy=email.policy.default)["Subject"] for m in self.messages]


class SmtpServer:
    """A real SMTP server on 127.0.0.1 that a test can stop and start again."""

    def __init__(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.inbox = Inbox()
        self._controller: Controller | None = None

    def start(self) -> None:
        self._controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def engine(db_url: str):
    return store.open_store(db_url)


def rows(engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(store.outbox).order_by(store.outbox.c.id))]


def test_alert_enqueued_once_per_fund_unit_period_kind(engine) -> None:
    alerts = alerts_of_june()
    assert len(alerts) == 4
    assert enqueue(engine, alerts) == 4
    assert enqueue(engine, alerts_of_june()) == 0  # a re-run of the month close
    stored = rows(engine)
    assert [(r["fund_code"], r["unit"], r["period"], r["kind"]) for r in stored] == [a.key for a in alerts]
    assert all(r["status"] == "pending" and r["attempts"] == 0 for r in stored)
    assert stored[0]["recipients"] == "caiwu@example.com,jihua@example.com"
    assert stored[0]["subject"] == alerts[0].subject


def test_rerunning_a_month_sends_nothing_new(engine, smtp: SmtpServer) -> None:
    mailer = SmtpMailer("127.0.0.1", smtp.port, sender="monitor@example.com")
    enqueue(engine, alerts_of_june())
    first = flush(engine, mailer)
    assert (first.sent, first.failed) == (4, 0), first.errors
    assert enqueue(engine, alerts_of_june()) == 0
    again = flush(engine, mailer)
    assert (again.sent, again.failed) == (0, 0)
    assert len(smtp.inbox.messages) == 4
    assert smtp.inbox.subjects() == [a.subject for a in alerts_of_june()]
    assert all(r["status"] == "sent" and r["sent_at"] is not None for r in rows(engine))


def test_failed_send_is_recorded_retried_and_delivered_exactly_once(engine, smtp: SmtpServer) -> None:
    mailer = SmtpMailer("127.0.0.1", smtp.port)
    (quarter,) = [a for a in alerts_of_june() if a.kind == "quarter_lagging"]
    assert enqueue(engine, [quarter]) == 1

    smtp.stop()
    down = flush(engine, mailer)
    assert (down.sent, down.failed) == (0, 1)
    (row,) = rows(engine)
    assert row["status"] == "pending" and row["attempts"] == 1
    assert "Connection" in row["last_error"] or "refused" in row["last_error"].lower()
    assert pending_count(engine) == 1  # nothing lost

    smtp.start()
    up = flush(engine, mailer)
    assert (up.sent, up.failed) == (1, 0)
    assert flush(engine, mailer) == type(up)(sent=0, failed=0)
    assert len(smtp.inbox.messages) == 1
    (row,) = rows(engine)
    assert row["status"] == "sent" and row["attempts"] == 2
    received = email.message_from_bytes(smtp.inbox.messages[0], policy=email.policy.default)
    assert received["Subject"] == "【季度支出进度滞后】药品监督管理专项资金\u30002021年第二季度\u3000支出进度不达序时进度"
    assert "第二季度" in received.get_body(preferencelist=("plain",)).get_content()
    assert "<table" in received.get_body(preferencelist=("html",)).get_content()
    # What arrives is what was stored: every part, decoded, in order (the
    # flush sends the stored body unparsed).
    def parts(msg):
        return [(p.get_content_type(), p.get_content()) for p in msg.walk() if not p.is_multipart()]

    assert parts(received) == parts(quarter.message)


def test_concurrent_flushes_send_each_message_once(engine) -> None:
    enqueue(engine, alerts_of_june())
    sent: list[str] = []
    lock = threading.Lock()

    class Recording:
        def send(self, msg: EmailMessage) -> None:
            with lock:
                sent.append(msg["Message-ID"])

    results = []
    threads = [threading.Thread(target=lambda: results.append(flush(engine, Recording()))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(sent) == sorted({a.message["Message-ID"] for a in alerts_of_june()})
    assert sum(r.sent for r in results) == 4


def test_a_flush_passes_over_a_message_another_flush_is_sending(pg_url: str) -> None:
    """PostgreSQL: while one flush waits on a slow SMTP exchange, another flush sends
    the other messages at once instead of queueing behind it; each goes out once."""
    engine = store.open_store(pg_url)
    enqueue(engine, alerts_of_june())
    sending, release = threading.Event(), threading.Event()
    sent: list[str] = []
    lock = threading.Lock()

    class Slow:
        def send(self, msg: EmailMessage) -> None:
            sending.set()
            assert release.wait(60)
            with lock:
                sent.append(msg["Message-ID"])

    class Quick:
        def send(self, msg: EmailMessage) -> None:
            with lock:
                sent.append(msg["Message-ID"])

    slow_result: list = []
    slow = threading.Thread(target=lambda: slow_result.append(flush(engine, Slow())))
    slow.start()
    try:
        assert sending.wait(30)  # the slow flush holds the first message
        quick = flush(engine, Quick())  # returns while the slow send is still open
        assert quick.sent == 3 and not release.is_set()
    finally:
        release.set()
        slow.join(60)
    assert slow_result[0].sent == 1
    assert sorted(sent) == sorted({a.message["Message-ID"] for a in alerts_of_june()})
    assert pending_count(engine) == 0


def test_a_failing_message_does_not_block_the_others(engine) -> None:
    enqueue(engine, alerts_of_june())

    class RefusesUnits:
        def __init__(self) -> None:
            self.sent: list[str] = []

        def send(self, msg: EmailMessage) -> None:
            if "开平" in msg["Subject"]:
                raise OSError("mailbox unavailable")
            self.sent.append(msg["Subject"])

    mailer = RefusesUnits()
    result = flush(engine, mailer)
    assert (result.sent, result.failed) == (3, 1)
    assert result.errors == ("OSError: mailbox unavailable",)
    assert pending_count(engine, "jiangmen-2021") == 1


def test_smtp_mailer_refuses_a_message_without_recipients(smtp: SmtpServer) -> None:
    msg = EmailMessage()
    msg["Subject"] = "无收件人"
    msg.set_content("x")
    with pytest.raises(ValueError, match="收件人"):
        SmtpMailer("127.0.0.1", smtp.port).send(msg)
    assert smtp.inbox.messages == []


def test_chinese_subjects_survive_the_outbox_round_trip_over_smtp(engine, smtp: SmtpServer) -> None:
    """Stored as RFC 822 text, parsed back, sent: every subject decodes to the same text.

    (An ASCII space between two encoded words used to be lost on the way.)
    """
    alloc = pd.DataFrame(
        [(u, date(2021, 1, 1), 1_000_000, "年初") for u in ("台山市市场监督管理局", "开平市市场监督管理局", "恩平 市局")],
        columns=["unit", "date", "amount_fen", "kind"],
    )
    pay = pd.DataFrame([], columns=["unit", "pay_date", "amount_fen"])
    alerts = []
    for month in range(1, 13):
        result = compute_execution(alloc, pay, year=2021, through_month=month, pace=PaceConfig())
        alerts += build_alerts(CFG, result, month)
    assert enqueue(engine, alerts) == len(alerts) == 12 * 4 + 4
    assert flush(engine, SmtpMailer("127.0.0.1", smtp.port)).sent == len(alerts)
    assert smtp.inbox.subjects() == [a.subject for a in alerts]
    assert "药品监督管理专项资金\u3000台山市市场监督管理局\u30002021年1月" in smtp.inbox.subjects()[1]
