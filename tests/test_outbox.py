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
    assert (
        received["Subject"] == "【季度支出进度滞后】药品监督管理专项资金\u30002021年第二季度\u3000支出进度不达序时进度"
    )
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
        [
            (u, date(2021, 1, 1), 1_000_000, "年初")
            for u in ("台山市市场监督管理局", "开平市市场监督管理局", "恩平 市局")
        ],
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


# --------------------------------------------------------------------------- SMTP AUTH in clear


class AuthRecorder:
    """aiosmtpd authenticator that accepts any login and remembers what it was sent."""

    def __init__(self) -> None:
        self.logins: list[tuple[bytes, bytes]] = []

    def __call__(self, server, session, envelope, mechanism, auth_data):  # noqa: ANN001, ANN204 - aiosmtpd hook
        from aiosmtpd.smtp import AuthResult

        self.logins.append((auth_data.login, auth_data.password))
        return AuthResult(success=True)


def _self_signed(tmp_path) -> tuple[str, str]:
    """A certificate for 127.0.0.1 and its key, as PEM files (cert, key)."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(cert_path), str(key_path)


class AuthServer(SmtpServer):
    """SmtpServer offering AUTH; over plain TCP, STARTTLS or SMTPS (``tls``)."""

    def __init__(self, tls: str = "", cert: tuple[str, str] | None = None) -> None:
        super().__init__()
        self.auth = AuthRecorder()
        # STARTTLS: AUTH only after the upgrade, as a real relay. Plain: AUTH
        # in clear (the refusal must come from the client). SMTPS: aiosmtpd
        # does not count implicit TLS for auth_require_tls, so not required.
        self.kwargs: dict = {"authenticator": self.auth, "auth_require_tls": tls == "starttls"}
        if tls:
            import ssl

            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(*cert)
            self.kwargs["tls_context" if tls == "starttls" else "ssl_context"] = ctx

    def start(self) -> None:
        self._controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port, **self.kwargs)
        self._controller.start()


@pytest.fixture
def auth_smtp() -> Iterator[AuthServer]:
    server = AuthServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_smtp_mailer_refuses_to_send_a_password_without_tls(engine, auth_smtp: AuthServer) -> None:
    """Item 10 of issue 13: no starttls, no SMTPS, a user: nothing reaches the server,
    the row stays pending with the Chinese reason; ``allow_plain_auth`` lets it through."""
    (quarter,) = [a for a in alerts_of_june() if a.kind == "quarter_lagging"]
    enqueue(engine, [quarter])
    plain = SmtpMailer("127.0.0.1", auth_smtp.port, user="caiwu", password="s3cret-pw")
    result = flush(engine, plain)
    assert (result.sent, result.failed, result.remaining) == (0, 1, 1)
    (row,) = rows(engine)
    assert row["status"] == "pending" and row["attempts"] == 1
    assert row["last_error"] == (
        "PlainAuthRefused: 拒绝在未加密连接上发送 SMTP 密码："
        "请启用 starttls，或在 fund.yaml smtp.allow_plain_auth 中明确允许"
    )
    assert auth_smtp.auth.logins == [] and auth_smtp.inbox.messages == []

    allowed = SmtpMailer("127.0.0.1", auth_smtp.port, user="caiwu", password="s3cret-pw", allow_plain_auth=True)
    assert flush(engine, allowed).sent == 1
    assert auth_smtp.auth.logins == [(b"caiwu", b"s3cret-pw")]
    assert len(auth_smtp.inbox.messages) == 1


def test_smtp_mailer_without_a_user_needs_no_tls(auth_smtp: AuthServer) -> None:
    (quarter,) = [a for a in alerts_of_june() if a.kind == "quarter_lagging"]
    SmtpMailer("127.0.0.1", auth_smtp.port).send(quarter.message)
    assert len(auth_smtp.inbox.messages) == 1 and auth_smtp.auth.logins == []


def test_smtp_mailer_from_config_reads_allow_plain_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    from budget_monitor.config import SmtpConfig

    monkeypatch.setenv("BUDGET_MONITOR_SMTP_PASSWORD", "pw")
    assert SmtpMailer.from_config(SmtpConfig()).allow_plain_auth is False  # the default is safe
    assert SmtpMailer.from_config(SmtpConfig()).timeout == 20.0
    mailer = SmtpMailer.from_config(SmtpConfig(user="u", allow_plain_auth=True, use_ssl=True))
    assert (mailer.user, mailer.password, mailer.allow_plain_auth, mailer.use_ssl) == ("u", "pw", True, True)


@pytest.mark.parametrize("tls", ["starttls", "smtps"])
def test_smtp_mailer_logs_in_over_tls(tls: str, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The refusal is only for clear text: over STARTTLS or SMTPS the login goes through."""
    import ssl

    cert = _self_signed(tmp_path)
    server = AuthServer(tls=tls, cert=cert)
    real = ssl.create_default_context
    # The client must trust the test's certificate (and still verify it).
    monkeypatch.setattr(ssl, "create_default_context", lambda *a, **k: real(*a, **{**k, "cafile": cert[0]}))
    server.start()
    try:
        (quarter,) = [a for a in alerts_of_june() if a.kind == "quarter_lagging"]
        SmtpMailer(
            "127.0.0.1", server.port, user="caiwu", password="pw", starttls=tls == "starttls", use_ssl=tls == "smtps"
        ).send(quarter.message)
    finally:
        server.stop()
    assert server.auth.logins == [(b"caiwu", b"pw")]
    assert len(server.inbox.messages) == 1


def test_starttls_the_server_does_not_offer_is_an_error_not_a_downgrade(auth_smtp: AuthServer) -> None:
    import smtplib

    (quarter,) = [a for a in alerts_of_june() if a.kind == "quarter_lagging"]
    with pytest.raises(smtplib.SMTPNotSupportedError):
        SmtpMailer("127.0.0.1", auth_smtp.port, user="caiwu", password="pw", starttls=True).send(quarter.message)
    assert auth_smtp.auth.logins == [] and auth_smtp.inbox.messages == []
