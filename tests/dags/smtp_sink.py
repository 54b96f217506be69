"""An in-test SMTP server (aiosmtpd) that keeps every message it receives."""

from __future__ import annotations

import email
import email.policy
import socket
import threading
import time
from email.message import EmailMessage

from aiosmtpd.controller import Controller


class SmtpSink:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self._lock = threading.Lock()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd hook name
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        msg["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
        with self._lock:
            self.messages.append(msg)
        return "250 OK"

    def start(self) -> SmtpSink:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def connection_json(self) -> str:
        """``AIRFLOW_CONN_SMTP_DEFAULT`` for this server (plain SMTP, no TLS)."""
        from budget_monitor_airflow.settings import local_smtp_connection

        return local_smtp_connection(self.port, "budget-monitor@test.example")

    def clear(self) -> None:
        with self._lock:
            self.messages.clear()

    def subjects(self) -> list[str]:
        with self._lock:
            return [str(m["Subject"]) for m in self.messages]

    def wait_for(self, predicate, timeout: float = 30) -> list[EmailMessage]:
        """Messages matching ``predicate`` once at least one arrived (mail is asynchronous)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                hits = [m for m in self.messages if predicate(m)]
            if hits or time.monotonic() > deadline:
                return hits
            time.sleep(0.2)


def body_text(msg: EmailMessage) -> str:
    parts = []
    for part in msg.walk():
        if part.get_content_maintype() == "text":
            parts.append(part.get_content())
    return "\n".join(parts)


def attachment_names(msg: EmailMessage) -> list[str]:
    return [p.get_filename() for p in msg.walk() if p.get_filename()]
