#!/usr/bin/env python3
"""airflow-init's checks and files, before ``airflow db migrate``.

1. Refuse placeholder or weak secrets (exit 2, one line per problem): the
   stack must not start with the example's values, an invalid Fernet key
   (Airflow would fail only when it first encrypts a connection) or a JWT
   secret anyone can guess.
2. Check the users (SimpleAuthManager, ``name:role``) and write their
   passwords file with a JSON encoder (a quote or backslash in a password
   must not break or extend the file), owner-only. Every listed user needs
   a strong password of its own; an approver must be a listed user who may
   answer Required Actions (not a viewer).
3. Create the data folders; hand logs/, config/ and data/ to the Airflow
   user (never dags/, plugins/ or include/: those are the operator's checkout).

The users step alone, for the native cluster (no Docker)::

    python3 docker/init.py users "$AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"

Also importable: tests/test_compose.py runs :func:`problems` on .env.example.
Standard library only: it runs as root before Airflow's environment is relied on.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import sys
from pathlib import Path

PLACEHOLDER_MARKS = ("change-me", "changeme", "placeholder", "example", "secret", "password", "airflow", "admin")
MIN_PASSWORD = 16
MIN_JWT = 64
DB_PASSWORDS = ("POSTGRES_PASSWORD", "BUDGET_MONITOR_DB_PASSWORD")
ADMIN_PASSWORD = "_AIRFLOW_WWW_USER_PASSWORD"
PASSWORDS = (*DB_PASSWORDS, ADMIN_PASSWORD)
USERS = "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"
USER_PASSWORDS = "BUDGET_MONITOR_USER_PASSWORDS"
APPROVERS = "BUDGET_MONITOR_APPROVERS"
# SimpleAuthManager's roles, each with the rights of those before it.
ROLES = ("viewer", "user", "op", "admin")
# Answering a Required Action is a write on the DAG: role user or above.
ANSWERING_ROLES = ("user", "op", "admin")


def _weak(value: str, minimum: int) -> str | None:
    if not value:
        return "is empty"
    low = value.lower()
    mark = next((m for m in PLACEHOLDER_MARKS if m in low), None)
    if mark:
        return f"contains {mark!r} (a placeholder or a guessable word)"
    if len(value) < minimum:
        return f"is {len(value)} characters long (at least {minimum})"
    if len(set(value)) < 8:
        return "uses fewer than 8 distinct characters"
    return None


def _fernet(value: str) -> str | None:
    if not value:
        return "is empty (Airflow would store connection passwords unencrypted)"
    # Fernet's own test (cryptography.fernet.Fernet.__init__), in the standard
    # library: this runs as root, before Airflow's environment is relied on.
    try:
        key = base64.urlsafe_b64decode(value.encode("ascii"))
    except (ValueError, binascii.Error):
        key = b""
    if len(key) != 32:
        return "is not a valid Fernet key (32 url-safe base64-encoded bytes); generate one with docker/make_env.py"
    return None


def admin_name(env: dict[str, str]) -> str:
    return env.get("_AIRFLOW_WWW_USER_USERNAME") or "admin"


def users(env: dict[str, str]) -> dict[str, str]:
    """name -> role, as SimpleAuthManager reads ``[core] simple_auth_manager_users``
    (malformed entries are left to :func:`user_problems`)."""
    out = {}
    for item in env.get(USERS, "").split(","):
        name, _, role = item.strip().partition(":")
        if name.strip() and role:
            out.setdefault(name.strip(), role.strip().lower())
    return out


def user_passwords(env: dict[str, str]) -> dict[str, str]:
    """name -> password: the admin's from ``_AIRFLOW_WWW_USER_PASSWORD``, the others'
    from ``BUDGET_MONITOR_USER_PASSWORDS`` (one JSON object)."""
    try:
        others = json.loads(env.get(USER_PASSWORDS) or "{}")
    except ValueError:
        others = {}
    if not isinstance(others, dict):
        others = {}
    return {**{str(k): v for k, v in others.items()}, admin_name(env): env.get(ADMIN_PASSWORD, "")}


def approvers(env: dict[str, str]) -> list[str]:
    return [n.strip() for n in env.get(APPROVERS, "").split(",") if n.strip()]


def user_problems(env: dict[str, str]) -> list[str]:
    """Every reason the users and their passwords must not be used (empty: they may)."""
    out = []
    seen: set[str] = set()
    for item in (i.strip() for i in env.get(USERS, "").split(",")):
        parts = item.split(":")
        if len(parts) != 2 or not parts[0].strip():
            out.append(f"{USERS} entry {item!r} is not name:role")
            continue
        name, role = parts[0].strip(), parts[1].strip().lower()
        if role not in ROLES:
            out.append(f"{USERS} gives {name!r} the role {role!r} (one of {', '.join(ROLES)})")
        if name in seen:
            out.append(f"{USERS} lists {name!r} twice")
        seen.add(name)
    listed = users(env)
    admin = admin_name(env)
    if listed.get(admin) != "admin":
        out.append(f"{USERS} must list the admin {admin!r} with role admin")
    try:
        others = json.loads(env.get(USER_PASSWORDS) or "{}")
    except ValueError as exc:
        others = {}
        out.append(f'{USER_PASSWORDS} is not JSON ({exc.msg}): one object {{"name": "password"}}')
    if not isinstance(others, dict) or not all(isinstance(v, str) for v in others.values()):
        others = {}
        out.append(f'{USER_PASSWORDS} must be one JSON object {{"name": "password"}}')
    for name in others:
        if name not in listed or name == admin:
            why = "the admin's is _AIRFLOW_WWW_USER_PASSWORD" if name == admin else f"not a user of {USERS}"
            out.append(f"{USER_PASSWORDS} has a password for {name!r}: {why}")
    for name in listed:
        if name == admin:
            continue  # problems() checks _AIRFLOW_WWW_USER_PASSWORD with the other secrets
        why = _weak(others.get(name, ""), MIN_PASSWORD)
        if why:
            out.append(f"{USER_PASSWORDS}[{name}] {why}")
    passwords = user_passwords(env)
    values = [passwords.get(n, "") for n in listed if passwords.get(n)]
    if len(set(values)) != len(values):
        out.append("every user needs a password of its own")
    for name in approvers(env):
        if listed.get(name) not in ANSWERING_ROLES:
            why = "is not a user" if name not in listed else f"has role {listed[name]!r}, which cannot answer"
            out.append(f"{APPROVERS} names {name!r}, who {why} (role user, op or admin needed)")
    return out


def problems(env: dict[str, str]) -> list[str]:
    """Every reason ``env`` must not start the stack (empty: it may)."""
    out = []
    why = _weak(env.get("AIRFLOW__API_AUTH__JWT_SECRET", ""), MIN_JWT)
    if why:
        out.append(f"AIRFLOW__API_AUTH__JWT_SECRET {why}")
    why = _fernet(env.get("AIRFLOW__CORE__FERNET_KEY", ""))
    if why:
        out.append(f"AIRFLOW__CORE__FERNET_KEY {why}")
    for name in PASSWORDS:
        why = _weak(env.get(name, ""), MIN_PASSWORD)
        if why:
            out.append(f"{name} {why}")
    values = [env.get(n, "") for n in PASSWORDS]
    if len(set(values)) != len(values):
        out.append("the database, store and admin passwords must differ")
    others = set(user_passwords(env).values()) - {env.get(ADMIN_PASSWORD, "")}
    if others & {env.get(n) for n in DB_PASSWORDS}:
        out.append("a user's password must differ from the database and store passwords")
    return out + user_problems(env)


def write_passwords_file(path: Path, passwords: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(passwords, f, ensure_ascii=False)
    os.replace(tmp, path)


def write_users(env: dict[str, str], path: Path) -> list[str]:
    """The passwords file for the listed users (a password for nobody else); their names."""
    listed = users(env)
    passwords = user_passwords(env)
    write_passwords_file(path, {n: passwords[n] for n in listed})
    return list(listed)


def _refuse(found: list[str]) -> int:
    for p in found:
        print(f"airflow-init: refused: {p}", file=sys.stderr)
    print("airflow-init: fix .env (docker/make_env.py writes strong values) and run it again", file=sys.stderr)
    return 2


def main(argv: list[str]) -> int:
    env = dict(os.environ)
    if argv[:1] == ["users"] and len(argv) == 2:  # the native cluster: users only
        found = user_problems(env)
        why = _weak(env.get(ADMIN_PASSWORD, ""), MIN_PASSWORD)
        if why:
            found.insert(0, f"{ADMIN_PASSWORD} {why}")
        if found:
            return _refuse(found)
        names = write_users(env, Path(argv[1]))
        print(f"airflow-init: passwords file {argv[1]} written for {', '.join(names)}")
        return 0
    if argv:
        print("usage: init.py            (airflow-init)\n       init.py users FILE", file=sys.stderr)
        return 2
    found = problems(env)
    if found:
        return _refuse(found)
    home = Path(env.get("AIRFLOW_HOME", "/opt/airflow"))
    for sub in ("logs", "config", "data/inbox", "data/reports", "data/home"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    names = write_users(env, Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]))
    print(f"airflow-init: secrets accepted; passwords file written for {', '.join(names)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
