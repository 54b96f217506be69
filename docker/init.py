#!/usr/bin/env python3
"""airflow-init's checks and files, before ``airflow db migrate``.

1. Refuse placeholder or weak secrets (exit 2, one line per problem): the
   stack must not start with the example's values, an invalid Fernet key
   (Airflow would fail only when it first encrypts a connection) or a JWT
   secret anyone can guess.
2. Write the SimpleAuthManager passwords file with a JSON encoder (a quote
   or backslash in a password must not break or extend the file), owner-only.
3. Create the data folders; hand logs/, config/ and data/ to the Airflow
   user (never dags/, plugins/ or include/: those are the operator's checkout).

Also importable: tests/test_compose.py runs :func:`problems` on .env.example.
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
PASSWORDS = ("POSTGRES_PASSWORD", "BUDGET_MONITOR_DB_PASSWORD", "_AIRFLOW_WWW_USER_PASSWORD")


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
    return out


def write_passwords_file(path: Path, users: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(users, f, ensure_ascii=False)
    os.replace(tmp, path)


def main() -> int:
    env = dict(os.environ)
    found = problems(env)
    if found:
        for p in found:
            print(f"airflow-init: refused: {p}", file=sys.stderr)
        print("airflow-init: fix .env (docker/make_env.py writes strong values) and run it again",
              file=sys.stderr)
        return 2
    home = Path(env.get("AIRFLOW_HOME", "/opt/airflow"))
    for sub in ("logs", "config", "data/inbox", "data/reports", "data/home"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    write_passwords_file(Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]),
                         {env.get("_AIRFLOW_WWW_USER_USERNAME") or "admin": env["_AIRFLOW_WWW_USER_PASSWORD"]})
    print("airflow-init: secrets accepted; passwords file written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
