"""Exactly-once alert e-mail: an outbox table in the store, flushed to a Mailer.

- ``enqueue`` inserts each alert once per (fund_code, unit, period, kind): an
  INSERT ... ON CONFLICT DO NOTHING on the table's unique key, so a re-run of a
  month close (or two runs racing) adds nothing new.
- ``flush`` sends the pending rows oldest first. Each row is claimed inside its
  own transaction: ``SELECT ... FOR UPDATE SKIP LOCKED`` (PostgreSQL: a
  concurrent flush passes over a message being sent) then ``UPDATE ... SET
  attempts = attempts + 1 WHERE status = 'pending'`` (SQLite ignores FOR
  UPDATE; its write lock makes a second flusher wait and then find the row no
  longer pending), so no message is sent twice by two flushes. Success marks
  the row 'sent'; a failure keeps it 'pending' with the error and the attempt
  counted, and the next flush retries it. Nothing is ever deleted; a sent row
  keeps the error of its last failed attempt, if any, as history.

A flush is bounded, so a broken mail server cannot hold a run for minutes:

- a **deadline** (``deadline_s``; default ``BUDGET_MONITOR_SMTP_FLUSH_DEADLINE``
  or 120 s): once passed, no new send is started. The send in progress is
  bounded by the mailer's own timeout (SmtpMailer: 20 s per socket
  operation), so a flush ends at most one send after its deadline.
- a **circuit breaker** (``max_connection_failures``, default 3): after that
  many consecutive failures to reach or use the server (refused, timed out,
  disconnected, TLS/login failure, 421) the flush stops. A rejection of one
  message (550 recipient refused, no recipients) shows the server is up: it
  resets the count and the flush goes on.

Messages a stopped flush never tried stay pending with their attempts
unchanged; ``FlushResult`` says how many remain and why the flush stopped
(``remaining``, ``stopped``, ``summary()``).

The one window left is a server that stores a message but whose final reply
never reaches us (a crash between its 250 and our commit, or a 250 later than
the client timeout): the row stays pending and the message is sent again by
the next flush. Every message goes out with the same deterministic Message-ID
on each attempt (alerts.py builds it from the row's key; ``flush`` derives the
same one for a stored message that lacks it), so such a duplicate is
recognisable, and mail systems that deduplicate by Message-ID drop it.

The monthly digest (fund.yaml ``alerts.mode: digest``) goes through the same
table. The close stores each alert that waits for it once per key, as today,
but ``held`` (no message, its figures in ``detail``): ``flush`` never sends
it. ``gather`` then claims every held row (status ``digested``, ``digest`` the
month) and queues, in the same transaction, one digest per recipient keyed
('', recipient, 'YYYY-MM', 'digest'): exactly once per (recipient, period).
Alerts held after a recipient's digest of the month was made (a fund closed
late, a rerun after a fix) go out in a supplement, period 'YYYY-MM#n'.

SMTP AUTH is never sent in clear: ``SmtpMailer`` refuses to log in over a
connection without TLS (neither STARTTLS nor SMTPS) unless ``allow_plain_auth``
is set, and the Airflow mailer applies the same rule to its connection.
"""

from __future__ import annotations

import email
import email.parser
import email.policy
import math
import os
import smtplib
import ssl
import time
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Protocol

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from budget_monitor.alerts import DIGEST, DIGEST_FUND, Alert, Held, build_digest
from budget_monitor.alerts import _message_id as alert_message_id
from budget_monitor.config import SmtpConfig
from budget_monitor.store import now_local, outbox

__all__ = [
    "Mailer",
    "SmtpMailer",
    "FlushResult",
    "PlainAuthRefused",
    "enqueue",
    "hold",
    "gather",
    "flush",
    "pending_count",
    "flush_deadline_s",
    "is_connection_failure",
    "refuse_plain_auth",
    "FLUSH_DEADLINE_ENV",
    "DEFAULT_FLUSH_DEADLINE_S",
    "DEFAULT_SMTP_TIMEOUT_S",
    "DEFAULT_MAX_CONNECTION_FAILURES",
]

PENDING = "pending"
SENT = "sent"
# An alert waiting for the monthly digest, then carried by one (never sent on its own).
HELD = "held"
DIGESTED = "digested"
# A gather claims held rows in chunks of this many ids (SQLite's bound-parameter limit).
_CHUNK = 500
_KEY = ("fund_code", "unit", "period", "kind")

# Per socket operation (connect, greeting, each command's reply). A relay on
# the office network answers in well under a second; 20 s leaves room for a
# slow one without letting a hung server cost 30 s per message as before.
# RFC 5321 suggests minutes for the final reply between MTAs; a relay slower
# than 20 s to accept DATA gets the message again on the next flush, with the
# same Message-ID (see the module docstring).
DEFAULT_SMTP_TIMEOUT_S = 20.0
# A whole flush. A fund's month sends a handful of mails (~16 ms each); even a
# province-wide flush from the CLI is far below this. 120 s is six timeouts:
# enough to ride out one slow reply, short enough that a run on a sick server
# ends in two minutes with its mail still pending.
DEFAULT_FLUSH_DEADLINE_S = 120.0
FLUSH_DEADLINE_ENV = "BUDGET_MONITOR_SMTP_FLUSH_DEADLINE"
# Three in a row: one refused connection can be a restart of the relay; three
# mean it is down, and every further message would only wait its timeout.
DEFAULT_MAX_CONNECTION_FAILURES = 3

_STOPPED_BREAKER = "邮件服务器连续 {n} 次连接失败，其余邮件留待下次发送"
_STOPPED_DEADLINE = "本次发送已达时限 {seconds} 秒，其余邮件留待下次发送"
_PLAIN_AUTH_REFUSED = "拒绝在未加密连接上发送 SMTP 密码：请启用 starttls，或在 {where} 中明确允许"


class Mailer(Protocol):
    """Delivers one stored message.

    ``msg`` is the message as stored, in wire form: its headers parsed (a
    mailer may rewrite From), its body the stored MIME text, unparsed
    (``flush`` does not pay a full parse per mail). A mailer that needs the
    parts parses ``msg.as_bytes()`` as any receiver would. It always carries
    a Message-ID, the same on every attempt: a mailer must keep it.
    """

    def send(self, msg: EmailMessage) -> None: ...


class PlainAuthRefused(RuntimeError):
    """SMTP credentials would cross the network in clear: refused before connecting."""

    def __init__(self, where: str = "fund.yaml smtp.allow_plain_auth") -> None:
        super().__init__(_PLAIN_AUTH_REFUSED.format(where=where))


def refuse_plain_auth(
    *, user: str | None, encrypted: bool, allowed: bool, where: str = "fund.yaml smtp.allow_plain_auth"
) -> None:
    """Raise :class:`PlainAuthRefused` when a login would go over an unencrypted
    connection and nobody allowed it (shared by SmtpMailer and the Airflow mailer)."""
    if user and not encrypted and not allowed:
        raise PlainAuthRefused(where)


@dataclass(frozen=True)
class SmtpMailer:
    """Plain smtplib delivery (the CLI's mailer; the DAGs wrap Airflow's SmtpHook).

    ``starttls`` upgrades a plain connection; ``use_ssl`` connects with TLS
    from the start (SMTPS, usually port 465). Without either, a ``user`` is
    refused unless ``allow_plain_auth`` (the password would travel in clear).
    """

    host: str
    port: int = 25
    starttls: bool = False
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    sender: str = "budget-monitor@localhost"
    timeout: float = DEFAULT_SMTP_TIMEOUT_S
    use_ssl: bool = False
    allow_plain_auth: bool = False

    @classmethod
    def from_config(cls, cfg: SmtpConfig) -> SmtpMailer:
        """From fund.yaml ``smtp``; the password comes from the env var it names."""
        # getattr: fields a fund.yaml schema may not have yet default to the safe side.
        return cls(
            host=cfg.host,
            port=cfg.port,
            starttls=cfg.starttls,
            user=cfg.user,
            password=os.environ.get(cfg.password_env),
            sender=cfg.sender,
            use_ssl=bool(getattr(cfg, "use_ssl", False)),
            allow_plain_auth=bool(getattr(cfg, "allow_plain_auth", False)),
        )

    def send(self, msg: EmailMessage) -> None:
        recipients = [a.addr_spec for h in ("To", "Cc", "Bcc") for a in _addresses(msg, h)]
        if not recipients:
            raise ValueError("邮件没有收件人：请在 fund.yaml 的 recipients 中配置收件人")
        # Before connecting: nothing of the credentials reaches the server.
        refuse_plain_auth(user=self.user, encrypted=self.starttls or self.use_ssl, allowed=self.allow_plain_auth)
        client: smtplib.SMTP
        if self.use_ssl:
            client = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=ssl.create_default_context())
        else:
            client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        with client as smtp:
            if self.starttls and not self.use_ssl:
                # No STARTTLS offered raises SMTPNotSupportedError: never a silent downgrade.
                smtp.starttls(context=ssl.create_default_context())
            if self.user:
                smtp.login(self.user, self.password or "")
            smtp.send_message(msg, from_addr=self.sender, to_addrs=recipients)


def _addresses(msg: EmailMessage, header: str) -> tuple:
    value = msg.get(header)
    return () if value is None else value.addresses


@dataclass(frozen=True)
class FlushResult:
    """What one flush did. ``remaining``: messages of the flushed scope (the fund,
    or all) still pending afterwards; ``stopped``: empty, or why the flush stopped
    before trying them all (Chinese, for the finance office)."""

    sent: int
    failed: int
    errors: tuple[str, ...] = ()
    remaining: int = 0
    stopped: str = ""

    def summary(self) -> str:
        """One Chinese line: sent, failed, what is still unsent and why."""
        parts = [f"邮件：已发送 {self.sent} 封"]
        if self.failed:
            parts.append(f"发送失败 {self.failed} 次")
        if self.remaining:
            parts.append(f"尚有 {self.remaining} 封未发送，已留在发件箱，下次运行时重试")
        line = "，".join(parts)
        return f"{line}（{self.stopped}）" if self.stopped else line


def enqueue(engine: Engine, alerts: Iterable[Alert]) -> int:
    """Store the alerts not stored yet; returns how many are new."""
    rows = [_row(a) for a in alerts]
    new = 0
    with engine.begin() as conn:
        for row in rows:
            new += _insert_if_absent(conn, row)
    return new


def hold(engine: Engine, items: Iterable[Held]) -> int:
    """Store the alerts that wait for the monthly digest, each key once; returns how many are new."""
    import json

    new = 0
    with engine.begin() as conn:
        for h in items:
            row = {
                "fund_code": h.key[0],
                "unit": h.key[1],
                "period": h.key[2],
                "kind": h.key[3],
                "subject": h.subject,
                "recipients": ",".join(h.recipients),
                "message": "",
                "status": HELD,
                "attempts": 0,
                "last_error": None,
                "created_at": now_local(),
                "sent_at": None,
                "detail": json.dumps(h.detail, ensure_ascii=False, sort_keys=True),
                "digest": None,
            }
            new += _insert_if_absent(conn, row)
    return new


class _Raced(Exception):
    """Another gather claimed some of the held rows first: this one rolls back."""


def gather(engine: Engine, month: str) -> int:
    """Queue the monthly digests of ``month`` ('YYYY-MM'): one per recipient of
    every held alert (all funds), gathering everything held for them. Returns
    how many digests were queued (0 when nothing was held: a rerun of the month).

    One transaction: the held rows are claimed (``digested``) and the digests
    inserted together, so an alert is carried by exactly one digest per
    recipient, and a crash leaves them held for the next gather. A recipient
    whose digest of ``month`` exists already gets a supplement ('YYYY-MM#n').
    """
    import json

    try:
        with engine.begin() as conn:
            rows = conn.execute(
                select(outbox.c.id, outbox.c.recipients, outbox.c.detail)
                .where(outbox.c.status == HELD)
                .order_by(outbox.c.id)
            ).all()
            if not rows:
                return 0
            ids = [r.id for r in rows]
            claimed = 0
            for i in range(0, len(ids), _CHUNK):
                chunk = ids[i : i + _CHUNK]
                claimed += conn.execute(
                    update(outbox)
                    .where(outbox.c.id.in_(chunk), outbox.c.status == HELD)
                    .values(status=DIGESTED, digest=month)
                ).rowcount
            if claimed != len(ids):
                raise _Raced
            by_recipient: dict[str, list[dict]] = {}
            for r in rows:
                item = json.loads(r.detail)
                for address in dict.fromkeys(a for a in r.recipients.split(",") if a):
                    by_recipient.setdefault(address, []).append(item)
            queued = 0
            for address, items in by_recipient.items():
                supplement = _next_supplement(conn, address, month)
                digest = build_digest(address, month, items, supplement=supplement)
                if not _insert_if_absent(conn, _row(digest)):
                    raise _Raced  # made meanwhile by another gather
                queued += 1
            return queued
    except _Raced:
        return 0


def _next_supplement(conn: Connection, recipient: str, month: str) -> int:
    """0 when the recipient has no digest of ``month`` yet, else one more than its last supplement."""
    periods = conn.execute(
        select(outbox.c.period).where(
            outbox.c.fund_code == DIGEST_FUND,
            outbox.c.unit == recipient,
            outbox.c.kind == DIGEST,
            (outbox.c.period == month) | outbox.c.period.like(f"{month}#%"),
        )
    ).scalars()
    taken = {0 if p == month else int(p.split("#", 1)[1]) for p in periods}
    return max(taken) + 1 if taken else 0


def _row(a: Alert) -> dict:
    return {
        "fund_code": a.fund_code,
        "unit": a.unit,
        "period": a.period,
        "kind": a.kind,
        "subject": a.subject,
        "recipients": ",".join(a.recipients),
        "message": a.message.as_string(),
        "status": PENDING,
        "attempts": 0,
        "last_error": None,
        "created_at": now_local(),
        "sent_at": None,
    }


def _insert_if_absent(conn: Connection, row: dict) -> int:
    name = conn.dialect.name
    if name in ("postgresql", "sqlite"):
        if name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        else:
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        stmt = (
            dialect_insert(outbox).values(row).on_conflict_do_nothing(index_elements=list(_KEY)).returning(outbox.c.id)
        )
        # RETURNING, not rowcount: psycopg reports -1 for this statement.
        return len(conn.execute(stmt).fetchall())
    # Other engines: let the unique key decide, inside a savepoint.
    try:
        with conn.begin_nested():
            conn.execute(insert(outbox).values(row))
    except IntegrityError:
        return 0
    return 1


def queued_keys(engine: Engine, fund_code: str) -> set[tuple[str, str, str, str]]:
    """Keys (fund, unit, period, kind) already in the outbox, sent or pending."""
    stmt = select(outbox.c.fund_code, outbox.c.unit, outbox.c.period, outbox.c.kind).where(
        outbox.c.fund_code == fund_code
    )
    with engine.connect() as conn:
        return {tuple(r) for r in conn.execute(stmt)}


def stored_headers(engine: Engine, fund_code: str, kind: str) -> list[tuple[str, EmailMessage]]:
    """(period, message headers) of the fund's stored messages of ``kind``, oldest first, sent or pending."""
    stmt = (
        select(outbox.c.period, outbox.c.message)
        .where(outbox.c.fund_code == fund_code, outbox.c.kind == kind)
        .order_by(outbox.c.id)
    )
    with engine.connect() as conn:
        return [(period, _HEADERS.parsestr(raw, headersonly=True)) for period, raw in conn.execute(stmt)]


def _of(fund_code: str | Collection[str]):  # -> a where clause
    """Rows of one fund code, or of several (a fund and its digests, DIGEST_FUND)."""
    if isinstance(fund_code, str):
        return outbox.c.fund_code == fund_code
    return outbox.c.fund_code.in_(list(fund_code))


def pending_count(engine: Engine, fund_code: str | Collection[str] | None = None) -> int:
    """Alerts not out yet (of ``fund_code`` when given): mails pending, and alerts
    still held for a digest (a gather that did not run leaves them visible here)."""
    return _count(engine, fund_code, (PENDING, HELD))


def _count(engine: Engine, fund_code: str | Collection[str] | None, statuses: tuple[str, ...]) -> int:
    stmt = select(func.count()).select_from(outbox).where(outbox.c.status.in_(statuses))
    if fund_code is not None:
        stmt = stmt.where(_of(fund_code))
    with engine.connect() as conn:
        return int(conn.execute(stmt).scalar_one())


_HEADERS = email.parser.Parser(policy=email.policy.default)


def flush_deadline_s() -> float:
    """The flush deadline in seconds: ``BUDGET_MONITOR_SMTP_FLUSH_DEADLINE``, else 120
    (``inf`` disables it)."""
    raw = os.environ.get(FLUSH_DEADLINE_ENV, "").strip()
    if not raw:
        return DEFAULT_FLUSH_DEADLINE_S
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not value > 0:  # also NaN
        raise ValueError(f"环境变量 {FLUSH_DEADLINE_ENV} 应为正的秒数（如 120），现为 {raw!r}")
    return value


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and its causes: Airflow's SmtpHook wraps a disconnect in its own error."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def is_connection_failure(exc: BaseException) -> bool:
    """True when the server could not be reached or used at all (every further
    message would fail the same way); False when it answered about this message."""
    for e in _chain(exc):
        if isinstance(e, PlainAuthRefused):
            return True  # configuration: no message can go to this server
        if isinstance(e, smtplib.SMTPServerDisconnected):
            return True  # includes a reply that timed out
        if isinstance(
            e,
            (
                smtplib.SMTPConnectError,
                smtplib.SMTPHeloError,
                smtplib.SMTPAuthenticationError,
                smtplib.SMTPNotSupportedError,
            ),
        ):
            return True
        if isinstance(e, smtplib.SMTPResponseException):
            return e.smtp_code == 421  # "service not available, closing channel"
        if isinstance(e, smtplib.SMTPException):
            return False  # e.g. every recipient refused: about this message
        if isinstance(e, OSError):
            return True  # refused, reset, timed out, unknown host, TLS handshake
    return False


def _fallback_message_id(key: tuple[str, str, str, str], msg: EmailMessage) -> str:
    """The Message-ID alerts.py would have given this row: same key, same sender domain."""
    try:
        sender = msg["From"].addresses[0].addr_spec
    except (AttributeError, IndexError, TypeError):
        sender = ""
    return alert_message_id(key, sender)


def flush(
    engine: Engine,
    mailer: Mailer,
    fund_code: str | Collection[str] | None = None,
    *,
    deadline_s: float | None = None,
    max_connection_failures: int = DEFAULT_MAX_CONNECTION_FAILURES,
) -> FlushResult:
    """Send the pending messages (of ``fund_code``, one code or several, when given), oldest first.

    ``deadline_s``: no new send starts after that many seconds (None: the
    ``BUDGET_MONITOR_SMTP_FLUSH_DEADLINE`` environment variable, else 120;
    ``math.inf``: no deadline). ``max_connection_failures``: stop after that
    many consecutive connection-level failures (see ``is_connection_failure``).
    Messages not tried stay pending, their attempts unchanged.
    """
    limit = flush_deadline_s() if deadline_s is None else deadline_s
    started = time.monotonic()
    stmt = select(outbox.c.id).where(outbox.c.status == PENDING).order_by(outbox.c.id)
    if fund_code is not None:
        stmt = stmt.where(_of(fund_code))
    with engine.connect() as conn:
        ids = list(conn.execute(stmt).scalars())

    sent = failed = streak = 0
    errors: list[str] = []
    stopped = ""
    for row_id in ids:
        if time.monotonic() - started >= limit:
            stopped = _STOPPED_DEADLINE.format(seconds=f"{limit:g}")
            break
        outcome = _send_one(engine, mailer, row_id)
        if outcome is None:
            continue  # being sent, or sent, by a concurrent flush
        if outcome is _SENT:
            sent += 1
            streak = 0
            continue
        failed += 1
        errors.append(f"{type(outcome).__name__}: {outcome}")
        streak = streak + 1 if is_connection_failure(outcome) else 0
        if streak >= max_connection_failures:
            stopped = _STOPPED_BREAKER.format(n=streak)
            break
    return FlushResult(
        sent=sent,
        failed=failed,
        errors=tuple(errors),
        # The mails this flush could have sent (a held alert waits for gather, not for a flush).
        remaining=_count(engine, fund_code, (PENDING,)),
        stopped=stopped,
    )


_SENT = object()


def _send_one(engine: Engine, mailer: Mailer, row_id: int) -> object | Exception | None:
    """Claim, send and mark one row: ``_SENT``, the send's exception (recorded on
    the row, which stays pending), or None when another flush has the row."""
    with engine.begin() as conn:
        # The row stays locked until this message is sent and marked (a
        # crash before the commit leaves it pending: retried, never lost).
        # SKIP LOCKED (PostgreSQL): a concurrent flush passes over a
        # message being sent instead of waiting for that SMTP exchange.
        locked = conn.execute(
            select(outbox.c.id)
            .where(outbox.c.id == row_id, outbox.c.status == PENDING)
            .with_for_update(skip_locked=True)
        ).first()
        if locked is None:
            return None
        # The claim itself: SQLite ignores FOR UPDATE, so two flushes may both
        # have read the row as pending; its write lock makes the second one
        # wait here and then find it sent.
        claimed = conn.execute(
            update(outbox)
            .where(outbox.c.id == row_id, outbox.c.status == PENDING)
            .values(attempts=outbox.c.attempts + 1)
        ).rowcount
        if not claimed:
            return None
        row = conn.execute(select(outbox.c.message, *(outbox.c[k] for k in _KEY)).where(outbox.c.id == row_id)).one()
        # Headers only: the body goes out as the stored text, unparsed (a
        # full parse + re-serialisation was 8 of the 16 ms a mail cost in
        # a province-wide flush, bench/RESULTS.md). The mailer may still
        # rewrite headers (From). The body is written out verbatim, so its
        # line ends must already be SMTP's CRLF (smtplib leaves bytes alone).
        msg = _HEADERS.parsestr(row.message.replace("\r\n", "\n").replace("\n", "\r\n"), headersonly=True)
        if msg["Message-ID"] is None:
            # Derived from the row, not random: a re-send after a lost final
            # reply must carry the same Message-ID as the copy already delivered.
            msg["Message-ID"] = _fallback_message_id(tuple(row[1:]), msg)
        try:
            mailer.send(msg)  # type: ignore[arg-type]
        except Exception as exc:  # noqa: BLE001 - any failure is recorded and retried
            conn.execute(update(outbox).where(outbox.c.id == row_id).values(last_error=f"{type(exc).__name__}: {exc}"))
            return exc
        conn.execute(update(outbox).where(outbox.c.id == row_id).values(status=SENT, sent_at=now_local()))
        return _SENT
