#!/usr/bin/env python3
"""Print a .env with fresh strong secrets, from .env.example's other values.

    python3 docker/make_env.py > .env && chmod 600 .env

Standard library only (runs before anything is installed).
"""

from __future__ import annotations

import base64
import os
import secrets
import sys
from pathlib import Path

GENERATED = {
    "POSTGRES_PASSWORD": lambda: secrets.token_urlsafe(24),
    "BUDGET_MONITOR_DB_PASSWORD": lambda: secrets.token_urlsafe(24),
    "_AIRFLOW_WWW_USER_PASSWORD": lambda: secrets.token_urlsafe(18),
    "AIRFLOW__API_AUTH__JWT_SECRET": lambda: secrets.token_hex(40),
    "AIRFLOW__CORE__FERNET_KEY": lambda: base64.urlsafe_b64encode(os.urandom(32)).decode(),
}


def render(example: str) -> str:
    lines = []
    for line in example.splitlines():
        name = line.split("=", 1)[0]
        if "=" in line and not line.startswith("#") and name in GENERATED:
            line = f"{name}={GENERATED[name]()}"
        lines.append(line)
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render((Path(__file__).resolve().parents[1] / ".env.example").read_text(encoding="utf-8")))
