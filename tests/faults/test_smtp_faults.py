"""SMTP fault battery (issue 13, item 7): real servers that misbehave, on SQLite and PostgreSQL.

Each test asserts the outbox afterwards (status, attempts, last_error), what
the misbehaving server kept, and that a later flush to a good server
delivers each message exactly once, or, when the first server kept a copy
whose final reply was lost, at most twice with the same Message-ID.

The misbehaving servers are a few lines of blocking sockets (``FaultyServer``);
the good one is aiosmtpd. Timeouts are small (the client's ``timeout``, the
flush's ``deadline_s``); nothing asserts a duration.
"""

from __future__ import annotations

import copy
import dataclasses
import email
import email.policy
import json
import os
import socket
import socketserver
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import date
from email.message import EmailMessage
from pathlib import Path

import pandas as pd
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from budget_monitor import store
from budget_monitor.alerts import Alert, build_alerts
from budget_monitor.config import PaceConfig
from budget_monitor.execution import compute_execution
from budget_monitor.outbox import (
    FLUSH_DEADLINE_ENV,
    FlushResult,
    SmtpMailer,
    enqueue,
    flush,
    flush_deadline_s,
    pending_count,
)

from seed_shaped import CFG

REPO = Path(__file__).resolve().parents[2]
# Small enough to keep the battery fast, large enough for a loaded machine to
# finish the handshake before the server starts misbehaving.
CLIENT_TIMEOUT_S = 1.5
BREAKER = "邮件服务器连续 3 次连接失败，其余邮件留待下次发送"


@pytest.fixture(scope="module")
def june() -> list[Alert]:
    """Fund and two units behind pace at the June close, Q2 lagging: 4 alerts."""
    alloc = pd.DataFrame(
        [
            ("台山市市场监督管理局", date(2021, 1, 1), 1_000_000, "年初"),
            ("开平市市场监督管理局", date(2021, 1, 1), 1_000_000, "年初"),
        ],
        columns=["unit", "date", "amount_fen", "kind"],
    )
    pay = pd.DataFrame(
        [("台山市市场监督管理局", date(2021, 6, 1), 400_000), ("开平市市场监督管理局", date(2021, 6, 1), 100_000)],
        columns=["unit", "pay_date", "amount_fen"],
    )
    alerts = build_alerts(CFG, compute_execution(alloc, pay, year=2021, through_month=6, pace=PaceConfig()), 6)
    assert len(alerts) == 4
    return alerts


def outbox_rows(engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(store.outbox).order_by(store.outbox.c.id))]


def parse(raw: bytes) -> EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)


def message_ids(raws: list[bytes]) -> list[str]:
    return [parse(r)["Message-ID"] for r in raws]


# --------------------------------------------------------------------------- servers


class FaultyServer:
    """A minimal SMTP server on 127.0.0.1 with one fault:

    - ``drop_mid_data``: closes the connection after a few lines of DATA (keeps nothing);
    - ``no_final_reply``: keeps the message and never answers the final ``.``;
    - ``late_final_reply``: keeps the message and answers 250 only once the
      client has given up waiting (timed out and closed);
    - ``slow_greeting``: never greets within the client's timeout.

    Every handler waits for the client to close rather than sleeping, so what
    the server saw is settled once ``idle()`` returns.
    """

    def __init__(self, fault: str) -> None:
        self.fault = fault
        self.kept: list[bytes] = []
        self.connections = 0
        self._active = 0
        self._cond = threading.Condition()
        owner = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                with owner._cond:
                    owner.connections += 1
                    owner._active += 1
                try:
                    owner._serve(self)
                except OSError:
                    pass  # the client went away: that is the point
                finally:
                    with owner._cond:
                        owner._active -= 1
                        owner._cond.notify_all()

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @staticmethod
    def _wait_for_close(h: socketserver.StreamRequestHandler) -> None:
        h.request.settimeout(60)  # a guard only: the client closes after its timeout
        while h.rfile.read(1):
            pass

    def _serve(self, h: socketserver.StreamRequestHandler) -> None:
        if self.fault == "slow_greeting":
            self._wait_for_close(h)
            return
        h.wfile.write(b"220 faulty ESMTP\r\n")
        while line := h.rfile.readline():
            verb = line[:4].upper()
            if verb == b"QUIT":
                h.wfile.write(b"221 bye\r\n")
                return
            if verb != b"DATA":
                h.wfile.write(b"250 ok\r\n")  # EHLO, MAIL, RCPT, RSET, NOOP
                continue
            h.wfile.write(b"354 go ahead\r\n")
            if self.fault == "drop_mid_data":
                for _ in range(3):
                    h.rfile.readline()
                return  # the handler closes the socket mid-message
            data = []
            while (chunk := h.rfile.readline()) not in (b".\r\n", b""):
                data.append(chunk[1:] if chunk.startswith(b"..") else chunk)
            with self._cond:
                self.kept.append(b"".join(data))
            if self.fault in ("no_final_reply", "late_final_reply"):
                self._wait_for_close(h)
                if self.fault == "late_final_reply":
                    h.wfile.write(b"250 stored, but too late\r\n")
                return
            h.wfile.write(b"250 ok\r\n")

    def idle(self) -> None:
        """Wait until every connection has ended (what the server kept is final)."""
        with self._cond:
            assert self._cond.wait_for(lambda: self._active == 0, timeout=60)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class Inbox:
    def __init__(self, reject: bool = False) -> None:
        self.messages: list[bytes] = []
        self.reject = reject

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: ANN001, N802 - aiosmtpd hook
        if self.reject:
            return "550 5.7.1 message refused"
        self.messages.append(envelope.content)
        return "250 OK"


@pytest.fixture
def good() -> Iterator[Inbox]:
    """A well-behaved SMTP server (aiosmtpd); ``good.port``."""
    inbox = Inbox()
    controller = started(inbox)
    try:
        yield inbox
    finally:
        controller.stop()


@pytest.fixture
def faulty(request: pytest.FixtureRequest) -> Iterator[FaultyServer]:
    server = FaultyServer(request.param)
    try:
        yield server
    finally:
        server.close()


def closed_port() -> int:
    """A port nothing listens on: connecting is refused (and aiosmtpd's Controller
    needs a port up front: it connects to it once started)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def started(inbox: Inbox, **kwargs) -> Controller:
    inbox.port = closed_port()  # type: ignore[attr-defined]
    controller = Controller(inbox, hostname="127.0.0.1", port=inbox.port, **kwargs)  # type: ignore[attr-defined]
    controller.start()
    return controller


def mailer(port: int) -> SmtpMailer:
    return SmtpMailer("127.0.0.1", port, sender="monitor@example.com", timeout=CLIENT_TIMEOUT_S)


def deliver_rest(engine, good: Inbox, alerts: list[Alert]) -> None:
    """A later flush to a good server sends everything still pending, and nothing twice."""
    pending = pending_count(engine)
    result = flush(engine, SmtpMailer("127.0.0.1", good.port))
    assert (result.sent, result.failed, result.remaining, result.stopped) == (pending, 0, 0, "")
    assert all(r["status"] == "sent" for r in outbox_rows(engine))
    assert flush(engine, SmtpMailer("127.0.0.1", good.port)) == FlushResult(sent=0, failed=0)


# --------------------------------------------------------------------------- the battery


def test_refused_connections_trip_the_breaker_and_leave_the_rest_untried(engine, good: Inbox, june) -> None:
    """(d) Nothing listens: three refusals, then the flush stops; the fourth is never tried."""
    enqueue(engine, june)
    result = flush(engine, mailer(closed_port()))
    assert (result.sent, result.failed, result.remaining) == (0, 3, 4)
    assert result.stopped == BREAKER
    assert (
        result.summary()
        == f"邮件：已发送 0 封，发送失败 3 次，尚有 4 封未发送，已留在发件箱，下次运行时重试（{BREAKER}）"
    )
    rows = outbox_rows(engine)
    assert [r["attempts"] for r in rows] == [1, 1, 1, 0]
    assert all(r["status"] == "pending" for r in rows)
    assert all("ConnectionRefusedError" in r["last_error"] for r in rows[:3]) and rows[3]["last_error"] is None

    deliver_rest(engine, good, june)
    assert sorted(message_ids(good.messages)) == sorted(a.message["Message-ID"] for a in june)


@pytest.mark.parametrize("faulty", ["slow_greeting"], indirect=True)
def test_slow_greeting_beyond_the_timeout_trips_the_breaker(engine, faulty: FaultyServer, good: Inbox, june) -> None:
    """(c) The server accepts but does not greet within the client's timeout."""
    enqueue(engine, june)
    result = flush(engine, mailer(faulty.port), deadline_s=600)
    faulty.idle()
    assert (result.sent, result.failed, result.remaining, result.stopped) == (0, 3, 4, BREAKER)
    assert faulty.connections == 3 and faulty.kept == []
    rows = outbox_rows(engine)
    assert [(r["status"], r["attempts"]) for r in rows] == [("pending", 1)] * 3 + [("pending", 0)]
    assert all(r["last_error"].startswith("SMTPServerDisconnected") for r in rows[:3])

    deliver_rest(engine, good, june)
    assert Counter(message_ids(good.messages)) == Counter({a.message["Message-ID"]: 1 for a in june})


@pytest.mark.parametrize("faulty", ["drop_mid_data"], indirect=True)
def test_connection_dropped_mid_data_keeps_the_mail_pending_then_delivers_it_once(
    engine, faulty: FaultyServer, good: Inbox, june
) -> None:
    """(a) The server hangs up in the middle of DATA: nothing is kept, nothing marked sent."""
    enqueue(engine, june)
    result = flush(engine, mailer(faulty.port))
    faulty.idle()
    assert (result.sent, result.failed, result.remaining, result.stopped) == (0, 3, 4, BREAKER)
    assert faulty.kept == []
    rows = outbox_rows(engine)
    assert [(r["status"], r["attempts"]) for r in rows] == [("pending", 1)] * 3 + [("pending", 0)]
    assert all(r["last_error"].startswith("SMTPServerDisconnected") for r in rows[:3])

    deliver_rest(engine, good, june)
    assert Counter(message_ids(good.messages)) == Counter({a.message["Message-ID"]: 1 for a in june})


@pytest.mark.parametrize("faulty", ["no_final_reply"], indirect=True)
def test_no_final_reply_sends_a_kept_mail_at_most_twice_with_one_message_id(
    engine, faulty: FaultyServer, good: Inbox, june
) -> None:
    """(b) The server keeps each message but never answers the final ``.``: the client
    times out, the row stays pending, and the next flush sends it again, under the
    same Message-ID (the only duplicate SMTP cannot rule out, and a recognisable one)."""
    enqueue(engine, june)
    result = flush(engine, mailer(faulty.port))
    faulty.idle()
    assert (result.sent, result.failed, result.remaining, result.stopped) == (0, 3, 4, BREAKER)
    assert len(faulty.kept) == 3
    rows = outbox_rows(engine)
    assert [(r["status"], r["attempts"]) for r in rows] == [("pending", 1)] * 3 + [("pending", 0)]
    assert all("timed out" in r["last_error"] for r in rows[:3])

    deliver_rest(engine, good, june)
    everywhere = Counter(message_ids(faulty.kept) + message_ids(good.messages))
    assert set(everywhere) == {a.message["Message-ID"] for a in june}
    assert max(everywhere.values()) == 2
    assert Counter(message_ids(good.messages)) == Counter({a.message["Message-ID"]: 1 for a in june})


@pytest.mark.parametrize("faulty", ["late_final_reply"], indirect=True)
def test_a_late_final_reply_resend_carries_the_same_message_id(engine, faulty: FaultyServer, june) -> None:
    """Item 7: the server stores the message, answers 250 after the client's timeout;
    the next flush sends it again with the Message-ID of the first copy, also for a
    stored message that has none (derived from the row, as alerts.py derives it)."""
    alert, legacy = june[0], june[1]
    bare = copy.deepcopy(legacy.message)
    del bare["Message-ID"]
    enqueue(engine, [alert, dataclasses.replace(legacy, message=bare)])
    assert "Message-ID" not in outbox_rows(engine)[1]["message"]

    for attempt in (1, 2):
        result = flush(engine, mailer(faulty.port))
        faulty.idle()
        assert (result.sent, result.failed, result.remaining) == (0, 2, 2)
        assert [r["attempts"] for r in outbox_rows(engine)] == [attempt, attempt]

    # Two copies of each at the server, each pair under one Message-ID; the
    # bare one's is the one alerts.py would have given it.
    assert Counter(message_ids(faulty.kept)) == {alert.message["Message-ID"]: 2, legacy.message["Message-ID"]: 2}
    assert sorted(parse(m)["Subject"] for m in faulty.kept) == sorted([alert.subject, legacy.subject] * 2)


@pytest.mark.parametrize("faulty", ["no_final_reply"], indirect=True)
def test_flush_deadline_stops_starting_new_sends(engine, faulty: FaultyServer, good: Inbox, june) -> None:
    """Item 7: past its deadline a flush starts no new send (the breaker is out of
    reach here); the messages it did not try keep their attempts at 0."""
    enqueue(engine, june)
    # The first send alone outlasts the deadline: the server never answers.
    result = flush(engine, mailer(faulty.port), deadline_s=CLIENT_TIMEOUT_S / 3, max_connection_failures=100)
    faulty.idle()
    assert (result.sent, result.failed, result.remaining) == (0, 1, 4)
    assert result.stopped == "本次发送已达时限 0.5 秒，其余邮件留待下次发送"
    assert [r["attempts"] for r in outbox_rows(engine)] == [1, 0, 0, 0]
    assert faulty.connections == 1

    deliver_rest(engine, good, june)


@pytest.mark.parametrize("faulty", ["no_final_reply"], indirect=True)
def test_flush_deadline_comes_from_the_environment(
    engine, faulty: FaultyServer, june, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(FLUSH_DEADLINE_ENV, "0.5")
    enqueue(engine, june)
    result = flush(engine, mailer(faulty.port), max_connection_failures=100)
    faulty.idle()
    assert result.stopped == "本次发送已达时限 0.5 秒，其余邮件留待下次发送"
    assert [r["attempts"] for r in outbox_rows(engine)] == [1, 0, 0, 0]


def test_flush_deadline_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(FLUSH_DEADLINE_ENV, raising=False)
    assert flush_deadline_s() == 120.0
    monkeypatch.setenv(FLUSH_DEADLINE_ENV, "300")
    assert flush_deadline_s() == 300.0
    for bad in ("0", "-5", "abc", "nan"):
        monkeypatch.setenv(FLUSH_DEADLINE_ENV, bad)
        with pytest.raises(ValueError, match=f"环境变量 {FLUSH_DEADLINE_ENV} 应为正的秒数"):
            flush_deadline_s()


def test_a_refused_message_does_not_trip_the_breaker(engine, june) -> None:
    """A 550 is the server answering about one message: the flush tries them all."""
    inbox = Inbox(reject=True)
    controller = started(inbox)
    try:
        enqueue(engine, june)
        result = flush(engine, mailer(inbox.port))
    finally:
        controller.stop()
    assert (result.sent, result.failed, result.remaining, result.stopped) == (0, 4, 4, "")
    rows = outbox_rows(engine)
    assert [r["attempts"] for r in rows] == [1, 1, 1, 1]
    assert all(r["last_error"].startswith("SMTPDataError: (550") for r in rows)


def test_a_success_resets_the_breaker(engine, june) -> None:
    """Three connection failures in all, but never three in a row: the flush goes on."""
    enqueue(engine, june)
    outcomes = iter(
        [ConnectionRefusedError("refused"), ConnectionRefusedError("refused"), None, TimeoutError("timed out")]
    )

    class Flaky:
        def send(self, msg: EmailMessage) -> None:
            exc = next(outcomes)
            if exc is not None:
                raise exc

    result = flush(engine, Flaky())
    assert (result.sent, result.failed, result.remaining, result.stopped) == (1, 3, 3, "")


# --------------------------------------------------------------------------- Airflow's mailer

_AIRFLOW_SEND = """
import os, sys
from email.message import EmailMessage
from budget_monitor.outbox import PlainAuthRefused
from budget_monitor_airflow.mail import SmtpHookMailer

msg = EmailMessage()
msg["Subject"] = "test"
msg["From"] = "monitor@example.com"
msg["To"] = "caiwu@example.com"
msg["Message-ID"] = "<bm.fixed@example.com>"
msg.set_content("x")
for connection in sys.argv[1:]:  # one Airflow import, several connections
    os.environ["AIRFLOW_CONN_SMTP_DEFAULT"] = connection
    try:
        with SmtpHookMailer() as mailer:
            mailer.send(msg)
    except PlainAuthRefused as exc:
        print("REFUSED", exc)
    else:
        print("SENT")
"""


@pytest.mark.airflow
def test_airflow_mailer_refuses_a_password_without_tls(tmp_path: Path) -> None:
    """Item 10 on the DAG path: an smtp_default connection with a login but TLS and SSL
    disabled is refused before SmtpHook connects, unless its extra allows plain auth."""
    from aiosmtpd.smtp import AuthResult

    logins: list[bytes] = []

    def authenticator(server, session, envelope, mechanism, auth_data):  # noqa: ANN001, ANN202 - aiosmtpd hook
        logins.append(auth_data.login)
        return AuthResult(success=True)

    inbox = Inbox()
    controller = started(inbox, authenticator=authenticator, auth_require_tls=False)
    sys.path.insert(0, str(REPO / "plugins"))
    try:
        from budget_monitor_airflow.settings import standalone_airflow_env
    finally:
        sys.path.remove(str(REPO / "plugins"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))}
    env.update(standalone_airflow_env(tmp_path / "airflow"), PYTHONPATH=str(REPO / "plugins"))

    def connection(extra: dict) -> str:
        return json.dumps(
            {
                "conn_type": "smtp",
                "host": "127.0.0.1",
                "port": inbox.port,
                "login": "caiwu",
                "password": "s3cret-pw",
                "extra": {"disable_ssl": True, "disable_tls": True, "retry_limit": 0, "timeout": 10, **extra},
            }
        )

    try:
        done = subprocess.run(
            [sys.executable, "-c", _AIRFLOW_SEND, connection({}), connection({"allow_plain_auth": True})],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        controller.stop()
    assert done.returncode == 0, done.stderr[-3000:]
    refused, sent = done.stdout.strip().splitlines()[-2:]
    assert refused == (
        "REFUSED 拒绝在未加密连接上发送 SMTP 密码：请启用 starttls，"
        "或在 Airflow 连接 smtp_default 的 extra allow_plain_auth 中明确允许"
    )
    assert sent == "SENT"
    assert logins == [b"caiwu"]
    assert message_ids(inbox.messages) == ["<bm.fixed@example.com>"]
