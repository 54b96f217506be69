"""Where the DAGs find funds, reports and the store: env vars and connections.

Environment variables (names shared with docker-compose.yaml and the tests):

- ``BUDGET_MONITOR_FUNDS_DIR``: inbox root, one fund directory per fund-year
  (default: ``<repo>/examples``).
- ``BUDGET_MONITOR_REPORTS_DIR``: year-end output root (default: ``<repo>/var/reports``).
- ``BUDGET_MONITOR_DB_URL``: store URL when the ``budget_monitor_db`` connection
  is not defined (default: the package's embedded SQLite file).
- ``BUDGET_MONITOR_OPS_EMAIL``: who gets non-data failures (optional).
- ``BUDGET_MONITOR_POOL``: the pool the per-fund tasks run in (default_pool).
- ``BUDGET_MONITOR_RETRY_DELAY_SECONDS``: retry delay of every task (300).
- ``BUDGET_MONITOR_DOCS_URL``: where the quarantine app's Data Docs route is
  reached (``<UI URL>/budget-monitor/docs``); read by the package when it
  writes a rejection notice (budget_monitor.validation.docs.page_url).
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

REPO = Path(__file__).resolve().parents[2]
DB_CONN_ID = "budget_monitor_db"
SOURCE_CONN_ID = "budget_monitor_source"
SMTP_CONN_ID = "smtp_default"


def funds_root() -> Path:
    return Path(os.environ.get("BUDGET_MONITOR_FUNDS_DIR") or REPO / "examples")


def reports_root() -> Path:
    return Path(os.environ.get("BUDGET_MONITOR_REPORTS_DIR") or REPO / "var" / "reports")


def pool() -> str:
    return os.environ.get("BUDGET_MONITOR_POOL") or "default_pool"


def retry_delay_seconds() -> int:
    return int(os.environ.get("BUDGET_MONITOR_RETRY_DELAY_SECONDS") or 300)


def flush_deadline_s() -> float:
    """Deadline of the DAG's outbox flush. Larger than the CLI's 120 s: the DAG
    flushes every fund at once (bench stage d: 62-135 s for 2,000 funds on a
    healthy server); the circuit breaker still stops it early when the server
    is down. BUDGET_MONITOR_SMTP_FLUSH_DEADLINE overrides."""
    return float(os.environ.get("BUDGET_MONITOR_SMTP_FLUSH_DEADLINE") or 900)


def ops_email() -> str | None:
    return os.environ.get("BUDGET_MONITOR_OPS_EMAIL") or None


def _optional_connection(conn_id: str):  # -> Connection | None
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None


def connection_url(conn) -> str:  # conn: airflow.sdk.Connection
    """SQLAlchemy URL of an Airflow connection.

    An explicit ``sqlalchemy_url`` extra wins; postgres and sqlite
    connections are translated; anything else is taken as its URI.
    """
    extra = conn.extra_dejson
    if extra.get("sqlalchemy_url"):
        return str(extra["sqlalchemy_url"])
    ctype = (conn.conn_type or "").lower()
    if ctype in ("postgres", "postgresql"):
        auth = ""
        if conn.login:
            auth = quote(conn.login, safe="")
            if conn.password:
                auth += ":" + quote(conn.password, safe="")
            auth += "@"
        port = f":{conn.port}" if conn.port else ""
        return f"postgresql+psycopg://{auth}{conn.host or '127.0.0.1'}{port}/{conn.schema or ''}"
    if ctype == "sqlite":
        return f"sqlite:///{conn.host}"
    return conn.get_uri()


def db_url() -> str | None:
    """Store URL: connection ``budget_monitor_db``, else env, else the package default (None)."""
    conn = _optional_connection(DB_CONN_ID)
    if conn is not None:
        return connection_url(conn)
    return os.environ.get("BUDGET_MONITOR_DB_URL") or None


def source_url() -> str | None:
    """SQL source to pull a month's tables from, when connection ``budget_monitor_source`` exists."""
    conn = _optional_connection(SOURCE_CONN_ID)
    return connection_url(conn) if conn is not None else None


def source_endpoint(conn_id: str):  # -> budget_monitor.intake.Endpoint | None
    """A source's Airflow connection as an Endpoint (None when there is no such connection).

    An ``http`` connection gives the treasury export's base URL (its host,
    with ``schema`` as the scheme when the host has none, and its port) and
    its password as the token; any other connection a SQLAlchemy URL
    (:func:`connection_url`, password included).
    """
    from budget_monitor.intake import Endpoint

    conn = _optional_connection(conn_id)
    if conn is None:
        return None
    if (conn.conn_type or "").lower() in ("http", "https"):
        return Endpoint(_http_url(conn), conn.password or None)
    return Endpoint(connection_url(conn), conn.password or None)


def _http_url(conn) -> str | None:
    host = conn.host or ""
    if not host or "://" in host:  # a whole URL as the host: taken as it is
        return host or None
    return f"{conn.schema or 'https'}://{host}" + (f":{conn.port}" if conn.port else "")


def default_args() -> dict:
    """The default_args both DAGs share: owner, retries and the failure notifier."""
    from datetime import timedelta

    from budget_monitor_airflow.notifier import RejectionNotifier

    return {
        "owner": "finance-it",
        "retries": 2,
        "retry_delay": timedelta(seconds=retry_delay_seconds()),
        "on_failure_callback": RejectionNotifier(),
    }


def standalone_airflow_env(home: Path) -> dict[str, str]:
    """Airflow settings for a single-machine run under ``home`` (SQLite metadata,
    our dags/ and plugins/, no examples): the demo, the DAG tests and the
    benchmark all run Airflow this way. Importing this module loads no Airflow,
    so callers can set these before ``import airflow``."""
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
    }


def local_smtp_connection(port: int, sender: str) -> str:
    """``AIRFLOW_CONN_SMTP_DEFAULT`` (JSON) for a plain SMTP server on loopback."""
    import json

    return json.dumps(
        {
            "conn_type": "smtp",
            "host": "127.0.0.1",
            "port": port,
            "extra": {"disable_ssl": True, "disable_tls": True, "from_email": sender, "retry_limit": 1, "timeout": 10},
        }
    )


def ui_url() -> str | None:
    """Where the finance office and the units reach the Airflow UI
    (BUDGET_MONITOR_UI_URL, no trailing slash); None when the deployment does not say."""
    return (os.environ.get("BUDGET_MONITOR_UI_URL") or "").strip().rstrip("/") or None


def feedback_deadline() -> timedelta:
    """How long a unit has to answer a 核实反馈 request (and again after the one
    reminder): BUDGET_MONITOR_FEEDBACK_DAYS, default 10 days;
    BUDGET_MONITOR_FEEDBACK_DEADLINE_S (seconds) wins, for tests and drills."""
    seconds = os.environ.get("BUDGET_MONITOR_FEEDBACK_DEADLINE_S")
    if seconds:
        return timedelta(seconds=float(seconds))
    return timedelta(days=float(os.environ.get("BUDGET_MONITOR_FEEDBACK_DAYS") or 10))


def approvers() -> list[str]:
    """Airflow user names allowed to approve a year-end report
    (BUDGET_MONITOR_APPROVERS, comma-separated). Empty: any user whose role
    may answer Human-in-the-loop tasks (not a viewer)."""
    return [n.strip() for n in (os.environ.get("BUDGET_MONITOR_APPROVERS") or "").split(",") if n.strip()]


def unit_users(unit: str) -> list[str]:
    """Airflow user names who answer for ``unit``: the ``account`` of its contact
    in the department's contacts file, if any; else nobody in particular (the
    finance office answers)."""
    try:
        from budget_monitor import contacts
    except ImportError:  # before the contacts table exists
        return []
    return contacts.accounts(funds_root(), unit)
