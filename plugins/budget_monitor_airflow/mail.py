"""Mail through the ``smtp_default`` Airflow connection (providers-smtp SmtpHook).

A connection with a login and a password but TLS and SSL both disabled
(``disable_tls`` and ``disable_ssl`` in its extra) would send the password in
clear: refused (``budget_monitor.outbox.PlainAuthRefused``) unless its extra
also sets ``"allow_plain_auth": true``.
"""

from __future__ import annotations

from collections.abc import Iterable
from email.message import EmailMessage

from budget_monitor_airflow.settings import SMTP_CONN_ID


class SmtpHookMailer:
    """The package's ``Mailer`` protocol (``send(EmailMessage)``) over SmtpHook.

    The hook owns host, port, TLS, credentials and retries from the
    connection; the message is built by the package, so it is handed to the
    hook's logged-in client as is (``send_email_smtp`` would rebuild it from
    HTML and file paths and lose the package's headers and in-memory parts),
    Message-ID included: a re-send carries the same one.
    """

    def __init__(self, conn_id: str = SMTP_CONN_ID) -> None:
        self.conn_id = conn_id
        self.sent = 0
        self._hook = None  # one logged-in connection for a whole flush (bench R5)

    def __enter__(self) -> SmtpHookMailer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._hook is not None:
            hook, self._hook = self._hook, None
            try:
                hook.__exit__(None, None, None)
            except Exception:  # noqa: BLE001 - closing a broken connection is best effort
                pass

    def send(self, msg: EmailMessage) -> None:
        from airflow.providers.smtp.hooks.smtp import SmtpHook

        if self._hook is None:
            hook = SmtpHook(smtp_conn_id=self.conn_id)
            # SmtpHook logs in whenever the connection has a login and a
            # password, TLS or not: refuse before it connects.
            _refuse_plain_auth(hook.get_connection(self.conn_id))
            self._hook = hook.__enter__()
        hook = self._hook
        # The connection's sender wins over fund.yaml's: relays accept only
        # the account they authenticate.
        if hook.from_email:
            del msg["From"]
            msg["From"] = hook.from_email
        try:
            hook._smtp_client.send_message(msg)  # noqa: SLF001 - see class docstring
        except Exception:
            self.close()  # reconnect for the next message; this one stays pending
            raise
        self.sent += 1


def _refuse_plain_auth(conn) -> None:  # noqa: ANN001 - an Airflow Connection
    """The package's rule for SMTP AUTH in clear, on an Airflow connection: with
    ``disable_ssl`` and ``disable_tls`` both set, a login is refused unless the
    connection's extra says ``allow_plain_auth``."""
    from budget_monitor.outbox import refuse_plain_auth

    extra = conn.extra_dejson
    refuse_plain_auth(
        user=conn.login if conn.login and conn.password else None,
        # As SmtpHook reads them: TLS is on unless the extra disables it.
        encrypted=not extra.get("disable_ssl", False) or not extra.get("disable_tls", False),
        allowed=bool(extra.get("allow_plain_auth", False)),
        where=f"Airflow 连接 {conn.conn_id} 的 extra allow_plain_auth",
    )


def send_html(
    to: Iterable[str], subject: str, html: str, files: list[str] | None = None, conn_id: str = SMTP_CONN_ID
) -> None:
    """A Chinese HTML mail, optionally with attachments, via SmtpHook.send_email_smtp."""
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    recipients = list(to)
    if not recipients:
        return
    _refuse_plain_auth(SmtpHook.get_connection(conn_id))
    with SmtpHook(smtp_conn_id=conn_id) as hook:
        hook.send_email_smtp(to=recipients, subject=subject, html_content=html, files=files or [])
