"""Airflow for in-process DAG tests: a temp AIRFLOW_HOME with a SQLite metadata DB.

Airflow reads its configuration when ``airflow`` is first imported, so the
environment is set here, at conftest import, before any test module imports
it. The metadata DB is migrated once per session (``airflow db migrate`` in a
subprocess, ~10 s).
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
_HOME = Path(tempfile.mkdtemp(prefix="bm-airflow-home-"))
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)

# Plugins folder on sys.path for DAG imports happens in airflow.settings; the
# glue package is imported by the tests directly too (and gives the settings).
sys.path.insert(0, str(REPO / "plugins"))
from budget_monitor_airflow.settings import standalone_airflow_env  # noqa: E402 - after sys.path

AIRFLOW_ENV = {
    **standalone_airflow_env(_HOME),
    # A retried task in dag.test() waits its retry_delay for real.
    "BUDGET_MONITOR_RETRY_DELAY_SECONDS": "1",
}
if "airflow" in sys.modules:  # pragma: no cover - would silently use another config
    raise RuntimeError("airflow was imported before tests/dags/conftest.py could configure it")
for _k in [k for k in os.environ if k.startswith("AIRFLOW__") or k.startswith("AIRFLOW_CONN_")]:
    del os.environ[_k]
os.environ.update(AIRFLOW_ENV)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """Migrated Airflow metadata DB (SQLite) for the session."""
    airflow = str(Path(sys.executable).parent / "airflow")
    ans = subprocess.run([airflow, "db", "migrate"], env=dict(os.environ), capture_output=True, text=True, timeout=600)
    assert ans.returncode == 0, ans.stdout[-3000:] + ans.stderr[-3000:]
    return _HOME


@pytest.fixture(scope="session")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags"))


@pytest.fixture(scope="module")
def smtp():
    """A real SMTP server (aiosmtpd, smtp_sink.py) for the module's DAG runs."""
    from smtp_sink import SmtpSink

    sink = SmtpSink().start()
    yield sink
    sink.stop()


@pytest.fixture
def pipeline_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, smtp, airflow_db):
    """The DAGs pointed at a private, empty inbox, a private SQLite store and reports
    folder, and the module's SMTP server (cleared); the store's engines disposed after."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    db = f"sqlite:///{tmp_path / 'store.db'}"
    monkeypatch.setenv("BUDGET_MONITOR_FUNDS_DIR", str(inbox))
    monkeypatch.setenv("BUDGET_MONITOR_DB_URL", db)
    monkeypatch.setenv("BUDGET_MONITOR_REPORTS_DIR", str(tmp_path / "reports"))
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", smtp.connection_json())
    smtp.clear()
    yield {"inbox": inbox, "db": db, "reports": tmp_path / "reports"}
    from budget_monitor import store

    store.dispose_all()
