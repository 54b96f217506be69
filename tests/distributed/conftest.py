"""Fixtures of the native distributed tests (marker ``distributed``).

Run only these:  .venv/bin/python -m pytest -m distributed tests/distributed -q
Under CI=true a PostgreSQL or Redis that is down fails the tests (no skip).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "dags"))  # smtp_sink
sys.path.insert(0, str(HERE.parents[1] / "plugins"))  # smtp_sink's settings, when run on their own

import cluster as C  # noqa: E402
from smtp_sink import SmtpSink  # noqa: E402

EXAMPLE = C.REPO / "examples" / "jiangmen-2021"
FUND, SECOND_FUND = "JM-2021-YPJG", "JM-2021-YPJG-B"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "distributed: native Airflow + Celery + PostgreSQL + Redis cluster")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.distributed)


@pytest.fixture(scope="module")
def services() -> None:
    problem = C.service_check()
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{problem} (required under CI=true)")
        pytest.skip(problem)


@pytest.fixture(scope="module")
def data_db(services) -> dict:
    """The budget store: its own fresh PostgreSQL database, reachable as connection budget_monitor_db."""
    name = f"bm_data_{uuid.uuid4().hex[:10]}"
    C.create_database(name)
    info = {"name": name, "url": C.pg_url(name)}
    yield info
    from budget_monitor import store

    store.dispose_all()
    C.drop_database(name)


@pytest.fixture(scope="module")
def stack(services, data_db, request):
    """The four Airflow processes with the real dags/ over a temp copy of the example fund.

    A test module may set ``CELERY_WORKERS`` (worker name -> concurrency;
    default one worker of concurrency 2) and ``CLUSTER_ENV`` (more settings).
    """
    import json

    tmp = Path(tempfile.mkdtemp(prefix="bm-dist-"))
    inbox = tmp / "inbox"
    shutil.copytree(EXAMPLE, inbox / EXAMPLE.name)
    # A second fund (same data, its own code): two funds, two batches with funds_per_task=1.
    second = inbox / f"{EXAMPLE.name}-b"
    shutil.copytree(EXAMPLE, second)
    yaml = second / "fund.yaml"
    yaml.write_text(
        yaml.read_text(encoding="utf-8").replace(f"code: {FUND}", f"code: {SECOND_FUND}", 1), encoding="utf-8"
    )
    smtp = SmtpSink().start()
    admin = C.PG_ADMIN_DSN.split("://", 1)[1].rsplit("/", 1)[0]
    login, hostport = admin.split("@") if "@" in admin else ("", admin)
    host, _, port = hostport.partition(":")
    extra = {
        "AIRFLOW_CONN_SMTP_DEFAULT": smtp.connection_json(),
        "AIRFLOW_CONN_BUDGET_MONITOR_DB": json.dumps(
            {
                "conn_type": "postgres",
                "host": host,
                "port": int(port or 5432),
                "login": login or None,
                "schema": data_db["name"],
            }
        ),
        "BUDGET_MONITOR_FUNDS_DIR": str(inbox),
        "BUDGET_MONITOR_REPORTS_DIR": str(tmp / "reports"),
        "BUDGET_MONITOR_HOME": str(tmp / "bm-home"),
        "BUDGET_MONITOR_RETRY_DELAY_SECONDS": "2",
        **getattr(request.module, "CLUSTER_ENV", {}),
    }
    cl = C.start_cluster(tmp / "airflow", extra, workers=getattr(request.module, "CELERY_WORKERS", None))
    try:
        yield {"cluster": cl, "smtp": smtp, "inbox": inbox, "reports": tmp / "reports", "tmp": tmp}
    finally:
        C.teardown_cluster(cl)
        smtp.stop()
        shutil.rmtree(tmp, ignore_errors=True)
