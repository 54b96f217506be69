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
from cluster import COMMON_ENV_NAMES, USERS as NATIVE_USERS  # noqa: E402  (the native test's names and users)

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


def _interpolate(value: str, dotenv: dict[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?error}``, the forms this file uses."""

    def one(m: re.Match) -> str:
        got = dotenv.get(m.group(1), "")
        if m.group(2) == ":?" and not got:
            raise KeyError(f"{m.group(1)}: {m.group(3)}")
        return got or (m.group(3) if m.group(2) == ":-" else "")

    return re.sub(r"\$\{(\w+)(?:(:[-?])([^}]*))?\}", one, str(value))


def _init_env(dotenv: dict[str, str]) -> dict[str, str]:
    """airflow-init's environment as compose builds it from this .env."""
    return {k: _interpolate(v, dotenv) for k, v in SERVICES["airflow-init"]["environment"].items()}


def _generated_env(**overrides: str) -> dict[str, str]:
    return _env_file(make_env.render((REPO / ".env.example").read_text(encoding="utf-8"), overrides))


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
    env = _init_env(_env_file((REPO / ".env.example").read_text(encoding="utf-8")))
    found = init.problems(env)
    for name in (
        "AIRFLOW__API_AUTH__JWT_SECRET",
        "AIRFLOW__CORE__FERNET_KEY",
        "POSTGRES_PASSWORD",
        "BUDGET_MONITOR_DB_PASSWORD",
        "_AIRFLOW_WWW_USER_PASSWORD",
        "BUDGET_MONITOR_USER_PASSWORDS[viewer]",
        "BUDGET_MONITOR_USER_PASSWORDS[approver]",
        "BUDGET_MONITOR_USER_PASSWORDS[contact]",
    ):
        assert any(p.startswith(name) for p in found), (name, found)


def test_generated_env_is_accepted_by_init(tmp_path):
    env = _init_env(_generated_env())
    assert init.problems(env) == []
    # Every user of the .env gets its password in the file the api-server reads.
    init.write_users(env, tmp_path / "passwords.json")
    written = json.loads((tmp_path / "passwords.json").read_text(encoding="utf-8"))
    assert written == {"admin": env["_AIRFLOW_WWW_USER_PASSWORD"], **json.loads(env["BUDGET_MONITOR_USER_PASSWORDS"])}
    assert set(written) == {"admin", "viewer", "approver", "contact"}


def test_make_env_writes_a_password_for_each_user_it_is_given():
    users = "viewer:viewer,approver:user,taishan:user,kaiping:user"
    env = _init_env(_generated_env(BUDGET_MONITOR_USERS=users, BUDGET_MONITOR_APPROVERS="approver"))
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == "admin:admin," + users
    assert set(json.loads(env["BUDGET_MONITOR_USER_PASSWORDS"])) == {"viewer", "approver", "taishan", "kaiping"}
    assert init.problems(env) == []


@pytest.mark.parametrize(
    "change,why",
    [
        ({"BUDGET_MONITOR_USERS": "viewer,approver:user,contact:user"}, "'viewer' is not name:role"),
        ({"BUDGET_MONITOR_USERS": "viewer:auditor,approver:user,contact:user"}, "the role 'auditor'"),
        ({"BUDGET_MONITOR_USERS": "viewer:viewer,viewer:user,approver:user,contact:user"}, "'viewer' twice"),
        ({"BUDGET_MONITOR_USERS": "viewer:viewer,approver:user,contact:user,kaiping:user"}, "[kaiping] is empty"),
        ({"BUDGET_MONITOR_USERS": "viewer:viewer,approver:user"}, "password for 'contact': not a user"),
        ({"BUDGET_MONITOR_APPROVERS": "viewer"}, "'viewer', who has role 'viewer', which cannot answer"),
        ({"BUDGET_MONITOR_APPROVERS": "approver,chief"}, "'chief', who is not a user"),
        ({"BUDGET_MONITOR_USER_PASSWORDS": "{viewer: x}"}, "is not JSON"),
        ({"BUDGET_MONITOR_USER_PASSWORDS": '["x"]'}, "one JSON object"),
    ],
)
def test_init_refuses_bad_users(change, why):
    env = _init_env({**_generated_env(), **change})
    found = init.problems(env)
    assert any(why in p for p in found), found


@pytest.mark.parametrize(
    "password,why",
    [("Sh0rt-pw", "at least 16"), ("change-me-approver", "placeholder"), ("my-Admin-password-2026", "guessable")],
)
def test_init_refuses_a_weak_user_password(password, why):
    env = _generated_env()
    passwords = json.loads(env["BUDGET_MONITOR_USER_PASSWORDS"])
    env["BUDGET_MONITOR_USER_PASSWORDS"] = json.dumps({**passwords, "approver": password})
    found = [p for p in init.problems(_init_env(env)) if p.startswith("BUDGET_MONITOR_USER_PASSWORDS[approver]")]
    assert found and why in found[0], found


def test_init_refuses_a_user_password_used_twice():
    env = _generated_env()
    passwords = json.loads(env["BUDGET_MONITOR_USER_PASSWORDS"])
    env["BUDGET_MONITOR_USER_PASSWORDS"] = json.dumps({**passwords, "contact": passwords["viewer"]})
    assert any("of its own" in p for p in init.problems(_init_env(env)))
    env = _generated_env()
    passwords = json.loads(env["BUDGET_MONITOR_USER_PASSWORDS"])
    env["BUDGET_MONITOR_USER_PASSWORDS"] = json.dumps({**passwords, "viewer": env["_AIRFLOW_WWW_USER_PASSWORD"]})
    assert any("of its own" in p for p in init.problems(_init_env(env)))
    env = _generated_env()
    passwords = json.loads(env["BUDGET_MONITOR_USER_PASSWORDS"])
    env["BUDGET_MONITOR_USER_PASSWORDS"] = json.dumps({**passwords, "viewer": env["POSTGRES_PASSWORD"]})
    assert any("database and store" in p for p in init.problems(_init_env(env)))


def test_native_cluster_users_are_written_by_the_same_script(tmp_path, monkeypatch, capsys):
    """docs/operations.md §1b: `docker/init.py users FILE` for a cluster without Docker."""
    assert NATIVE_USERS == {"admin": "admin", "viewer": "viewer", "approver": "user", "contact": "user"}
    env = _init_env(_generated_env())
    for name in (
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS",
        "_AIRFLOW_WWW_USER_USERNAME",
        "_AIRFLOW_WWW_USER_PASSWORD",
    ):
        monkeypatch.setenv(name, env[name])
    monkeypatch.setenv("BUDGET_MONITOR_USER_PASSWORDS", env["BUDGET_MONITOR_USER_PASSWORDS"])
    monkeypatch.setenv("BUDGET_MONITOR_APPROVERS", "approver")
    path = tmp_path / "passwords.json"
    assert init.main(["users", str(path)]) == 0
    assert set(json.loads(path.read_text(encoding="utf-8"))) == set(NATIVE_USERS)
    assert path.stat().st_mode & 0o777 == 0o600
    monkeypatch.setenv("BUDGET_MONITOR_APPROVERS", "viewer")
    assert init.main(["users", str(tmp_path / "other.json")]) == 2
    assert "refused: BUDGET_MONITOR_APPROVERS" in capsys.readouterr().err
    assert not (tmp_path / "other.json").exists()


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
    env = _init_env(_generated_env())
    env[name] = value  # in the container (compose's own guard already stops an empty one)
    found = [p for p in init.problems(env) if p.startswith(name)]
    assert found and why in found[0], found


def test_init_refuses_the_same_password_twice():
    env = _generated_env()
    env["BUDGET_MONITOR_DB_PASSWORD"] = env["POSTGRES_PASSWORD"]
    assert any("must differ" in p for p in init.problems(_init_env(env)))


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
    # The admin, then the .env's users (required); every role one of SimpleAuthManager's.
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"].startswith("${_AIRFLOW_WWW_USER_USERNAME:-admin}:admin,")
    assert "${BUDGET_MONITOR_USERS:?" in env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"]
    users = _interpolate(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"], _generated_env())
    roles = dict(u.split(":") for u in users.split(","))
    assert roles == {"admin": "admin", "viewer": "viewer", "approver": "user", "contact": "user"}
    ops = (REPO / "docs" / "operations.md").read_text(encoding="utf-8")
    assert "SimpleAuthManager" in ops and "FAB" in ops and "docker/init.py users" in ops


def test_user_passwords_reach_airflow_init_only_and_approvers_every_airflow_service():
    """A container's environment is visible to `docker inspect`: the users'
    passwords go to the one-shot init, which writes the file the api-server reads."""
    for name, svc in SERVICES.items():
        env = svc.get("environment") or {}
        assert ("BUDGET_MONITOR_USER_PASSWORDS" in env) == (name == "airflow-init"), name
        if name in AIRFLOW_SERVICES:
            assert env["BUDGET_MONITOR_APPROVERS"] == "${BUDGET_MONITOR_APPROVERS:-}", name
    assert "BUDGET_MONITOR_USER_PASSWORDS" not in COMPOSE["x-airflow-common"]["environment"]


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
    users = json.loads(_env_file(example)["BUDGET_MONITOR_USER_PASSWORDS"])
    assert users and all(pw.startswith("change-me") for pw in users.values()), users
    assert ".env" in (REPO / ".gitignore").read_text().split()
    assert (REPO / "docker" / "build-ca" / ".gitignore").read_text().split()[0] == "*"


def test_healthchecks_that_run_airflow_go_through_the_entrypoint():
    """A healthcheck is a `docker exec`: without the entrypoint it has no database URI
    and `airflow jobs check` reads an empty SQLite DB (caught by tests/compose)."""
    for name, svc in SERVICES.items():
        test = svc.get("healthcheck", {}).get("test", [])
        if any("airflow " in str(part) for part in test):
            assert test[:2] == ["CMD", "/opt/budget-monitor/docker/entrypoint.py"], (name, test)
