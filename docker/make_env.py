#!/usr/bin/env python3
"""Print a .env with fresh strong secrets, from .env.example's other values.

    python3 docker/make_env.py > .env && chmod 600 .env
    python3 docker/make_env.py BUDGET_MONITOR_USERS=viewer:viewer,approver:user,taishan:user \\
        BUDGET_MONITOR_APPROVERS=approver > .env && chmod 600 .env

A NAME=VALUE argument replaces that line of the example (the users, their
approvers, ports...); BUDGET_MONITOR_USER_PASSWORDS then gets a fresh password
for every user of BUDGET_MONITOR_USERS. Standard library only (runs before
anything is installed).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import sys
from collections.abc import Callable
from pathlib import Path


def _user_passwords(values: dict[str, str]) -> str:
    names = [i.split(":", 1)[0].strip() for i in values.get("BUDGET_MONITOR_USERS", "").split(",") if i.strip()]
    return json.dumps({n: secrets.token_urlsafe(18) for n in names}, ensure_ascii=False, separators=(",", ":"))


GENERATED: dict[str, Callable[[dict[str, str]], str]] = {
    "POSTGRES_PASSWORD": lambda _: secrets.token_urlsafe(24),
    "BUDGET_MONITOR_DB_PASSWORD": lambda _: secrets.token_urlsafe(24),
    "_AIRFLOW_WWW_USER_PASSWORD": lambda _: secrets.token_urlsafe(18),
    "AIRFLOW__API_AUTH__JWT_SECRET": lambda _: secrets.token_hex(40),
    "AIRFLOW__CORE__FERNET_KEY": lambda _: base64.urlsafe_b64encode(os.urandom(32)).decode(),
    "BUDGET_MONITOR_USER_PASSWORDS": _user_passwords,
}


def _name(line: str) -> str | None:
    return line.split("=", 1)[0] if "=" in line and not line.startswith("#") else None


def render(example: str, overrides: dict[str, str] | None = None) -> str:
    overrides = dict(overrides or {})
    values = {n: line.split("=", 1)[1] for line in example.splitlines() if (n := _name(line))}
    values.update(overrides)
    lines = []
    for line in example.splitlines():
        name = _name(line)
        if name in GENERATED:
            line = f"{name}={GENERATED[name](values)}"
        elif name in overrides:
            line = f"{name}={overrides.pop(name)}"
        lines.append(line)
    lines += [f"{k}={v}" for k, v in overrides.items()]  # names the example does not have
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    args = dict(a.split("=", 1) for a in sys.argv[1:] if "=" in a)
    if len(args) != len(sys.argv[1:]):
        sys.exit("usage: make_env.py [NAME=VALUE ...] > .env")
    sys.stdout.write(render((Path(__file__).resolve().parents[1] / ".env.example").read_text(encoding="utf-8"), args))
