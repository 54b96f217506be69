"""Exactly-once alert e-mail: an outbox table in the store, flushed to a Mailer.

- ``enqueue`` inserts each alert once per (fund_code, unit, period, kind): an
  INSERT ... ON CONFLICT DO NOTHING on the table's unique key, so a re-run of a
  month close (or two runs racing) adds nothing new.
- ``flush`` sends the pending rows oldest first. Each row is claimed inside its
  own transaction by ``UPDATE ... SET attempts = attempts + 1 WHERE status =
  'pending'``: a concurrent flusher blocks on that row and then finds it no
  longer pending, so it never sends it a second time. Success marks the row
  'sent'; a failure keeps it 'pending' with the error and the attempt counted,
  and the next flush retries it. Nothing is ever deleted; a sent row keeps
  the error of its last failed attempt, if any, as history.

The one window left is a crash between the SMTP server accepting a message and
the commit: the row stays pending and is sent again. Every message carries a
deterministic Message-ID (alerts.py), so such a duplicate is recognisable.
"""

from __future__ import annotations

import email
import email.policy
import email.parser
import os
import smtplib
import ssl
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Protocol

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from budget_monitor.alerts import Alert
from budget_monitor.config import SmtpConfig
from budget_monitor.store import now_local, outbox

__all__ = ["Mailer", "SmtpMailer", "FlushResult", "enqueue", "flush", "pending_count"]

PENDING = "pending"
SENT = "sent"
_KEY = ("fund_code", "unit", "period", "kind")


class Mailer(Protocol):
    """Delivers one stored message.

    ``msg`` is the message as stored, in wire form: its headers parsed (a
    mailer may rewrite From), its body the stored MIME text, unparsed
    (``flush`` does not pay a full parse per mail). A mailer that needs the
    parts parses ``msg.as_bytes()`` as any receiver would.
    """

    def send(self, msg: EmailMessage) -> None: ...


@dataclass(frozen=True)
class SmtpMailer:
    """Plain smtplib delivery (the CLI's mailer; the DAGs wrap Airflow's SmtpHook)."""

    host: str
    port: int = 25
    starttls: bool = False
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    sender: str = "budget-monitor@localhost"
    timeout: float = 30.0

    @classmethod
    def from_config(cls, cfg: SmtpConfig) -> SmtpMailer:
        """From fund.yaml ``smtp``; the password comes from the env var it names."""
        return cls(host=cfg.host, port=cfg.port, starttls=cfg.starttls, user=cfg.user,
                   password=os.environ.get(cfg.password_env), sender=cfg.sender)

    def send(self, msg: EmailMessage) -> None:
        recipients = [a.addr_spec for h in ("To", "Cc", "Bcc") for a in _addresses(msg, h)]
        if not recipients:
            raise ValueError("邮件没有收件人：请在 fund.yaml 的 recipients 中配置收件人")
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            if self.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if self.user:
                smtp.login(self.user, self.password or "")
            smtp.send_message(msg, from_addr=self.sender, to_addrs=recipients)


def _addresses(msg: EmailMessage, header: str) -> tuple:
    value = msg.get(header)
    return () if value is None else value.addresses


@dataclass(frozen=True)
class FlushResult:
    sent: int
    failed: int
    errors: tuple[str, ...] = ()


def enqueue(engine: Engine, alerts: Iterable[Alert]) -> int:
    """Store the alerts not stored yet; returns how many are new."""
    rows = [
        {
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
        for a in alerts
    ]
    new = 0
    with engine.begin() as conn:
        for row in rows:
            new += _insert_if_absent(conn, row)
    return new


def _insert_if_absent(conn: Connection, row: dict) -> int:
    name = conn.dialect.name
    if name in ("postgresql", "sqlite"):
        if name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        else:
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        stmt = (
            dialect_insert(outbox).values(row)
            .on_conflict_do_nothing(index_elements=list(_KEY))
            .returning(outbox.c.id)
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
        outbox.c.fund_code == fund_code)
    with engine.connect() as conn:
        return {tuple(r) for r in conn.execute(stmt)}


def stored_headers(engine: Engine, fund_code: str, kind: str) -> list[tuple[str, EmailMessage]]:
    """(period, message headers) of the fund's stored messages of ``kind``, oldest first, sent or pending."""
    stmt = (select(outbox.c.period, outbox.c.message)
            .where(outbox.c.fund_code == fund_code, outbox.c.kind == kind).order_by(outbox.c.id))
    with engine.connect() as conn:
        return [(period, _HEADERS.parsestr(raw, headersonly=True)) for period, raw in conn.execute(stmt)]


def pending_count(engine: Engine, fund_code: str | None = None) -> int:
    from sqlalchemy import func

    stmt = select(func.count()).select_from(outbox).where(outbox.c.status == PENDING)
    if fund_code is not None:
        stmt = stmt.where(outbox.c.fund_code == fund_code)
    with engine.connect() as conn:
        return int(conn.execute(stmt).scalar_one())


_HEADERS = email.parser.Parser(policy=email.policy.default)


def flush(engine: Engine, mailer: Mailer, fund_code: str | None = None) -> FlushResult:
    """Send every pending message (of ``fund_code`` when given), oldest first."""
    stmt = select(outbox.c.id).where(outbox.c.status == PENDING).order_by(outbox.c.id)
    if fund_code is not None:
        stmt = stmt.where(outbox.c.fund_code == fund_code)
    with engine.connect() as conn:
        ids = list(conn.execute(stmt).scalars())

    sent = failed = 0
    errors: list[str] = []
    for row_id in ids:
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
                continue  # being sent, or sent, by a concurrent flush
            # The claim itself: SQLite ignores FOR UPDATE, so two flushes may both
            # have read the row as pending; its write lock makes the second one
            # wait here and then find it sent.
            claimed = conn.execute(
                update(outbox)
                .where(outbox.c.id == row_id, outbox.c.status == PENDING)
                .values(attempts=outbox.c.attempts + 1)
            ).rowcount
            if not claimed:
                continue
            raw = conn.execute(select(outbox.c.message).where(outbox.c.id == row_id)).scalar_one()
            # Headers only: the body goes out as the stored text, unparsed (a
            # full parse + re-serialisation was 8 of the 16 ms a mail cost in
            # a province-wide flush, bench/RESULTS.md). The mailer may still
            # rewrite headers (From). The body is written out verbatim, so its
            # line ends must already be SMTP's CRLF (smtplib leaves bytes alone).
            msg = _HEADERS.parsestr(raw.replace("\r\n", "\n").replace("\n", "\r\n"), headersonly=True)
            try:
                mailer.send(msg)  # type: ignore[arg-type]
            except Exception as exc:  # noqa: BLE001 - any failure is recorded and retried
                error = f"{type(exc).__name__}: {exc}"
                conn.execute(update(outbox).where(outbox.c.id == row_id).values(last_error=error))
                failed += 1
                errors.append(error)
                continue
            conn.execute(
                update(outbox)
                .where(outbox.c.id == row_id)
                .values(status=SENT, sent_at=now_local())
            )
            sent += 1
    return FlushResult(sent=sent, failed=failed, errors=tuple(errors))
