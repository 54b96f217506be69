"""docker-compose.yaml, the Dockerfile and .env.example, read as data: secure defaults.

The stack itself is run by tests/compose (marker ``compose``); these checks
are the fast part, each for a defect an operator met on the first day
(issue #17): placeholders that passed the guards, ports on every interface,
an unauthenticated mail UI started by default, passwords spliced into URIs,
the passwords file written with printf, the store on Airflow's DB owner,
worker logs unreadable from the UI, the base image not swappable, a 725 MB
build context, the image built six times, test tools in the production image.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from urllib.parse import urlsplit, unquote

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "distributed"))
from cluster import COMMON_ENV_NAMES  # noqa: E402  (the native test's variable names)

COMPOSE = yaml.safe_load((REPO / "docker-compose.yaml").read_text(encoding="utf-8"))
SERVICES = COMPOSE["services"]
AIRFLOW_SERVICES = (
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-worker",
    "airflow-triggerer",
    "airflow-init",
)
DOCKERFILE = (REPO / "Dockerfile").read_text(encoding="utf-8")


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "docker" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


init, entrypoint, make_env = _load("init"), _load("entrypoint"), _load("make_env")


def _env_file(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))


def _lock_version(package: str) -> str:
    text = (REPO / "requirements.txt").read_text(encoding="utf-8")
    return re.search(rf"^{re.escape(package)}==([\w.]+)$", text, re.M).group(1)


def test_celery_executor_with_postgres_and_redis():
    env = SERVICES["airflow-scheduler"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].endswith("/execution/")
    assert {"postgres", "redis", "mailpit"} <= set(SERVICES)


def test_the_four_airflow_processes_and_triggerer():
    commands = {name: str(SERVICES[name].get("command")) for name in AIRFLOW_SERVICES}
    assert commands["airflow-apiserver"] == "api-server"
    assert commands["airflow-scheduler"] == "scheduler"
    assert commands["airflow-dag-processor"] == "dag-processor"
    assert commands["airflow-worker"].startswith("celery worker")
    assert commands["airflow-triggerer"] == "triggerer"
    for name in AIRFLOW_SERVICES:
        assert "healthcheck" in SERVICES[name] or name == "airflow-init", name


def test_same_environment_names_as_the_native_test():
    """Each name is in the compose environment, or built by the image's entrypoint from a password."""
    derived = set(entrypoint.database_uris({"AIRFLOW_DB_PASSWORD": "x", "BUDGET_MONITOR_DB_PASSWORD": "y"}))
    for name in AIRFLOW_SERVICES:
        env = SERVICES[name]["environment"]
        missing = [k for k in COMMON_ENV_NAMES if k not in env and k not in derived]
        assert not missing, f"{name} lacks {missing}"
        assert "AIRFLOW_DB_PASSWORD" in env and "BUDGET_MONITOR_DB_PASSWORD" in env


def test_project_folders_are_mounted_and_the_checkout_read_only():
    for name in AIRFLOW_SERVICES:
        mounts = {re.search(r":(/opt/airflow/[\w/]+)", v).group(1): v for v in SERVICES[name]["volumes"]}
        assert {
            "/opt/airflow/dags",
            "/opt/airflow/plugins",
            "/opt/airflow/include",
            "/opt/airflow/data",
            "/opt/airflow/logs",
        } <= set(mounts), name
        for code in ("/opt/airflow/dags", "/opt/airflow/plugins", "/opt/airflow/include"):
            assert mounts[code].endswith(":ro"), mounts[code]
    env = SERVICES["airflow-worker"]["environment"]
    assert env["BUDGET_MONITOR_FUNDS_DIR"].startswith("/opt/airflow/data/")
    assert env["BUDGET_MONITOR_REPORTS_DIR"].startswith("/opt/airflow/data/")


def test_init_chowns_what_the_services_write_never_the_checkout():
    script = "\n".join(SERVICES["airflow-init"]["command"])
    chown = [line for line in script.splitlines() if "chown" in line]
    assert chown and not any(d in line for line in chown for d in ("dags", "plugins", "include")), chown


def test_image_base_is_a_build_argument_defaulting_to_the_locked_official_image():
    version = _lock_version("apache-airflow")
    default = re.search(r"^ARG AIRFLOW_BASE_IMAGE=apache/airflow:([\w.]+)-python([\d.]+)$", DOCKERFILE, re.M)
    assert default and default.group(1) == version and default.group(2) == "3.11"
    assert re.findall(r"^FROM (\S+)", DOCKERFILE, re.M) == ["${AIRFLOW_BASE_IMAGE}"] * 2
    build = SERVICES["airflow-init"]["build"]
    assert build["args"]["AIRFLOW_BASE_IMAGE"].endswith(f"apache/airflow:{version}-python3.11}}")
    assert version in COMPOSE["x-airflow-common"]["image"]


def test_the_image_is_built_once():
    assert "build" not in COMPOSE["x-airflow-common"]
    assert [n for n, s in SERVICES.items() if "build" in s] == ["airflow-init"]


def test_production_image_has_the_airflow_extra_only():
    assert '-c requirements.txt ".[airflow]"' in DOCKERFILE  # the lock as constraints, not installed whole
    assert "-r requirements.txt" not in DOCKERFILE and "[test]" not in DOCKERFILE
    # The project's own wheel is installed without the network (no build isolation step there).
    assert "--no-index --no-deps" in DOCKERFILE


def test_build_context_leaves_out_venv_git_env_and_data():
    lines = (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert lines[lines.index("*")] == "*"  # everything out, then only what the image needs
    allowed = {line[1:] for line in lines if line.startswith("!")}
    assert not any(a.startswith((".venv", ".git", ".env", "data", "logs", "tests")) for a in allowed), allowed
    for copied in re.findall(r"^COPY (?!.*--from)(?:--\S+ )*(.+) \S+$", DOCKERFILE, re.M):
        for src in copied.split():
            assert any(src.rstrip("/") == a.rstrip("/") or src.startswith(a) for a in allowed), src


def test_published_ports_listen_on_loopback_unless_opted_in():
    for name, svc in SERVICES.items():
        for port in svc.get("ports", []):
            assert re.match(r"^\$\{\w+:-127\.0\.0\.1\}:", str(port)), (name, port)


def test_mail_catcher_only_in_the_dev_profile():
    assert SERVICES["mailpit"]["profiles"] == ["dev"]
    for name, svc in SERVICES.items():
        assert "mailpit" not in (svc.get("depends_on") or {}), name


def test_worker_logs_readable_from_the_ui():
    """No --skip-serve-logs: the api-server asks the worker's log server; logs are also shared."""
    assert "--skip-serve-logs" not in str(SERVICES["airflow-worker"]["command"])
    for name in AIRFLOW_SERVICES:
        assert any(v.endswith(":/opt/airflow/logs") for v in SERVICES[name]["volumes"]), name


def test_example_placeholders_are_refused_by_init():
    env = _env_file((REPO / ".env.example").read_text(encoding="utf-8"))
    found = init.problems(env)
    for name in (
        "AIRFLOW__API_AUTH__JWT_SECRET",
        "AIRFLOW__CORE__FERNET_KEY",
        "POSTGRES_PASSWORD",
        "BUDGET_MONITOR_DB_PASSWORD",
        "_AIRFLOW_WWW_USER_PASSWORD",
    ):
        assert any(p.startswith(name) for p in found), (name, found)


def test_generated_env_is_accepted_by_init():
    env = _env_file(make_env.render((REPO / ".env.example").read_text(encoding="utf-8")))
    assert init.problems(env) == []


@pytest.mark.parametrize(
    "name,value,why",
    [
        ("AIRFLOW__CORE__FERNET_KEY", "", "empty"),
        ("AIRFLOW__CORE__FERNET_KEY", "not-base64-at-all!", "Fernet"),
        ("AIRFLOW__CORE__FERNET_KEY", "c2hvcnQ=", "Fernet"),
        ("AIRFLOW__API_AUTH__JWT_SECRET", "ab" * 20, "at least 64"),
        ("AIRFLOW__API_AUTH__JWT_SECRET", "a" * 80, "distinct"),
        ("POSTGRES_PASSWORD", "Sh0rt-pw", "at least 16"),
        ("_AIRFLOW_WWW_USER_PASSWORD", "my-Admin-password-2026", "guessable"),
        ("BUDGET_MONITOR_DB_PASSWORD", "change-me-store", "placeholder"),
    ],
)
def test_init_refuses_weak_secrets(name, value, why):
    env = _env_file(make_env.render((REPO / ".env.example").read_text(encoding="utf-8")))
    env[name] = value
    found = [p for p in init.problems(env) if p.startswith(name)]
    assert found and why in found[0], found


def test_init_refuses_the_same_password_twice():
    env = _env_file(make_env.render((REPO / ".env.example").read_text(encoding="utf-8")))
    env["BUDGET_MONITOR_DB_PASSWORD"] = env["POSTGRES_PASSWORD"]
    assert any("must differ" in p for p in init.problems(env))


def test_passwords_are_url_encoded_in_the_uris():
    pw = 'p@ss:w/rd?#%"\\ 密码'
    uris = entrypoint.database_uris({"AIRFLOW_DB_PASSWORD": pw, "BUDGET_MONITOR_DB_PASSWORD": pw + "2"})
    for name, uri in uris.items():
        parts = urlsplit("x://" + uri.split("://", 1)[1])  # urlsplit refuses "_" in a scheme
        assert parts.hostname == "postgres" and parts.port == 5432, (name, uri)
        assert unquote(parts.password) == (pw + "2" if "BUDGET" in name else pw), (name, uri)
    assert urlsplit(uris["AIRFLOW_CONN_BUDGET_MONITOR_DB"]).username == "budget_monitor"
    # An operator's own URI is kept.
    assert "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" not in entrypoint.database_uris(
        {"AIRFLOW_DB_PASSWORD": pw, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql://elsewhere/x"}
    )


def test_no_password_is_spliced_into_a_uri_in_the_compose_file():
    text = (REPO / "docker-compose.yaml").read_text(encoding="utf-8")
    assert not re.search(r"://[^\s'\"]*\$\{[A-Z_]*PASSWORD", text)


def test_passwords_file_is_json_encoded_and_owner_only(tmp_path):
    path = tmp_path / "config" / "passwords.json"
    tricky = 'a"b\\c", "evil": "x'
    init.write_passwords_file(path, {"admin": tricky})
    assert json.loads(path.read_text(encoding="utf-8")) == {"admin": tricky}
    assert path.stat().st_mode & 0o777 == 0o600
    script = "\n".join(SERVICES["airflow-init"]["command"])
    assert "printf" not in script and "docker/init.py" in script


def test_the_store_has_its_own_database_role():
    store = SERVICES["airflow-worker"]["environment"]
    assert "AIRFLOW_CONN_BUDGET_MONITOR_DB" not in store  # built from its own password
    uri = entrypoint.database_uris({"BUDGET_MONITOR_DB_PASSWORD": "x" * 20})["AIRFLOW_CONN_BUDGET_MONITOR_DB"]
    assert urlsplit(uri).username == "budget_monitor" and uri.endswith("/budget_monitor")
    sql = (REPO / "docker" / "postgres-init.sh").read_text(encoding="utf-8")
    assert "CREATE ROLE budget_monitor LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'pw'" in sql
    assert "CREATE DATABASE budget_monitor OWNER budget_monitor" in sql
    assert 'REVOKE ALL ON DATABASE :"airflow_db" FROM PUBLIC' in sql
    mounts = SERVICES["postgres"]["volumes"]
    assert any(m.startswith("./docker/postgres-init.sh:/docker-entrypoint-initdb.d/") for m in mounts)


def test_auth_manager_is_explicit_with_roles():
    env = SERVICES["airflow-apiserver"]["environment"]
    assert env["AIRFLOW__CORE__AUTH_MANAGER"].endswith("SimpleAuthManager")
    assert "SIMPLE_AUTH_MANAGER_ALL_ADMINS" not in env
    users = env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"]
    assert all(u.rsplit(":", 1)[1] in ("viewer", "user", "op", "admin") for u in users.split(","))
    ops = (REPO / "docs" / "operations.md").read_text(encoding="utf-8")
    assert "SimpleAuthManager" in ops and "FAB" in ops


def test_no_secret_in_the_repository():
    """Secrets come from .env; the example ships placeholders only."""
    for name in AIRFLOW_SERVICES:
        env = SERVICES[name]["environment"]
        assert env["AIRFLOW__API_AUTH__JWT_SECRET"].startswith("${")
        assert env["AIRFLOW__CORE__FERNET_KEY"].startswith("${") and ":?" in env["AIRFLOW__CORE__FERNET_KEY"]
    example = (REPO / ".env.example").read_text(encoding="utf-8")
    for line in example.splitlines():
        if re.match(r"^\w*(PASSWORD|SECRET|FERNET_KEY)\w*=", line):
            assert "change-me" in line, line
    assert ".env" in (REPO / ".gitignore").read_text().split()
    assert (REPO / "docker" / "build-ca" / ".gitignore").read_text().split()[0] == "*"


def test_healthchecks_that_run_airflow_go_through_the_entrypoint():
    """A healthcheck is a `docker exec`: without the entrypoint it has no database URI
    and `airflow jobs check` reads an empty SQLite DB (caught by tests/compose)."""
    for name, svc in SERVICES.items():
        test = svc.get("healthcheck", {}).get("test", [])
        if any("airflow " in str(part) for part in test):
            assert test[:2] == ["CMD", "/opt/budget-monitor/docker/entrypoint.py"], (name, test)
