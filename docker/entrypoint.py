#!/usr/bin/env python3
"""Entrypoint of the budget-monitor image: database URIs from passwords, then /entrypoint.

A password written into a URI by hand breaks on ``@ : / % # ?`` (or
silently connects elsewhere). The compose file passes the passwords; the
URIs are built here with every part URL-encoded. A URI already set in the
environment (an operator's own database) is kept as it is.
"""

from __future__ import annotations

import os
import sys
from urllib.parse import quote


def database_uris(env: dict[str, str]) -> dict[str, str]:
    """The Airflow and store URIs derivable from ``env`` and not set there already."""
    host = env.get("BUDGET_MONITOR_PG_HOST", "postgres")
    port = env.get("BUDGET_MONITOR_PG_PORT", "5432")

    def uri(scheme: str, user: str, password: str, db: str) -> str:
        return f"{scheme}://{quote(user, safe='')}:{quote(password, safe='')}@{host}:{port}/{quote(db, safe='')}"

    out: dict[str, str] = {}
    airflow_pw = env.get("AIRFLOW_DB_PASSWORD")
    if airflow_pw:
        user, db = env.get("AIRFLOW_DB_USER", "airflow"), env.get("AIRFLOW_DB_NAME", "airflow")
        out["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = uri("postgresql+psycopg", user, airflow_pw, db)
        out["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"] = uri("postgresql+psycopg_async", user, airflow_pw, db)
        out["AIRFLOW__CELERY__RESULT_BACKEND"] = uri("db+postgresql+psycopg", user, airflow_pw, db)
    store_pw = env.get("BUDGET_MONITOR_DB_PASSWORD")
    if store_pw:
        user, db = (
            env.get("BUDGET_MONITOR_DB_USER", "budget_monitor"),
            env.get("BUDGET_MONITOR_DB_NAME", "budget_monitor"),
        )
        out["AIRFLOW_CONN_BUDGET_MONITOR_DB"] = uri("postgresql", user, store_pw, db)
    return {k: v for k, v in out.items() if not env.get(k)}


def main(argv: list[str]) -> None:
    # The passwords stay in the environment: airflow-init checks their strength.
    os.environ.update(database_uris(dict(os.environ)))
    os.execv("/entrypoint", ["/entrypoint", *argv])


if __name__ == "__main__":
    main(sys.argv[1:])
