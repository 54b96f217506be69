"""docker-compose.yaml agrees with the native distributed test and the lock.

There is no Docker engine here, so the compose file is checked as data: the
executor, the services, the environment variable names the native Celery
test uses, the mounted folders and the Airflow version.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "distributed"))
from cluster import COMMON_ENV_NAMES  # noqa: E402  (the native test's variable names)

COMPOSE = yaml.safe_load((REPO / "docker-compose.yaml").read_text(encoding="utf-8"))
SERVICES = COMPOSE["services"]
AIRFLOW_SERVICES = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-worker",
                    "airflow-triggerer", "airflow-init")


def _lock_version(package: str) -> str:
    text = (REPO / "requirements.txt").read_text(encoding="utf-8")
    return re.search(rf"^{re.escape(package)}==([\w.]+)$", text, re.M).group(1)


def test_celery_executor_with_postgres_and_redis():
    env = SERVICES["airflow-scheduler"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg://")
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].endswith("/execution/")
    assert {"postgres", "redis", "mailpit"} <= set(SERVICES)


def test_the_four_airflow_processes_and_triggerer():
    commands = {name: str(SERVICES[name].get("command")) for name in AIRFLOW_SERVICES}
    assert commands["airflow-apiserver"] == "api-server"
    assert commands["airflow-scheduler"] == "scheduler"
    assert commands["airflow-dag-processor"] == "dag-processor"
    assert commands["airflow-worker"].startswith("celery worker")
    assert "--skip-serve-logs" in commands["airflow-worker"]
    assert commands["airflow-triggerer"] == "triggerer"
    for name in AIRFLOW_SERVICES:
        assert "healthcheck" in SERVICES[name] or name == "airflow-init", name


def test_same_environment_names_as_the_native_test():
    for name in AIRFLOW_SERVICES:
        env = SERVICES[name]["environment"]
        missing = [k for k in COMMON_ENV_NAMES if k not in env]
        assert not missing, f"{name} lacks {missing}"


def test_project_folders_are_mounted():
    for name in AIRFLOW_SERVICES:
        targets = {re.search(r":(/opt/airflow/[\w/]+)", v).group(1) for v in SERVICES[name]["volumes"]}
        assert {"/opt/airflow/dags", "/opt/airflow/plugins", "/opt/airflow/include",
                "/opt/airflow/data"} <= targets, name
    env = SERVICES["airflow-worker"]["environment"]
    assert env["BUDGET_MONITOR_FUNDS_DIR"].startswith("/opt/airflow/data/")
    assert env["BUDGET_MONITOR_REPORTS_DIR"].startswith("/opt/airflow/data/")


def test_image_matches_the_locked_airflow_version():
    version = _lock_version("apache-airflow")
    base = re.search(r"^FROM apache/airflow:([\w.]+)-python([\d.]+)$",
                     (REPO / "Dockerfile").read_text(encoding="utf-8"), re.M)
    assert base and base.group(1) == version
    assert base.group(2) == "3.11"
    assert COMPOSE["x-airflow-common"]["image"].endswith(f":{version}}}") or version in \
        COMPOSE["x-airflow-common"]["image"]


def test_no_secret_in_the_repository():
    """Secrets come from .env; the example ships placeholders only."""
    for name in AIRFLOW_SERVICES:
        env = SERVICES[name]["environment"]
        assert env["AIRFLOW__API_AUTH__JWT_SECRET"].startswith("${")
    example = (REPO / ".env.example").read_text(encoding="utf-8")
    for line in example.splitlines():
        if re.match(r"^\w*(PASSWORD|SECRET|FERNET_KEY)\w*=", line):
            assert "change-me" in line, line
    assert ".env" in (REPO / ".gitignore").read_text().split()
