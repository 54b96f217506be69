"""Shared fixtures: real PostgreSQL databases (created and dropped per test) and SQLite files.

Under CI=true a PostgreSQL that cannot be reached is a failure, never a skip.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_FUND = REPO / "examples" / "jiangmen-2021"
PG_ADMIN_URL = os.environ.get("BUDGET_MONITOR_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def _service_missing(what: str, exc: BaseException) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is required under CI=true and is not reachable: {exc}")
    pytest.skip(f"{what} not reachable: {exc}")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database; dropped afterwards."""
    from sqlalchemy import create_engine, text

    name = f"bm_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - any connection failure means "service down"
        admin.dispose()
        _service_missing("PostgreSQL", exc)
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        from budget_monitor import store

        store.dispose_all()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each store test runs on both engines."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def engine(db_url: str):  # -> sqlalchemy.Engine
    """The store on ``db_url`` (both engines), migrated."""
    from budget_monitor import store

    return store.open_store(db_url)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the default SQLite file and archive out of the repo during tests."""
    monkeypatch.setenv("BUDGET_MONITOR_HOME", str(tmp_path / "home"))
