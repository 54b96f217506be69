"""Answer Human-in-the-loop requests through Airflow's public REST API, on
someone's behalf: the demo answers for the units and the approver, the tests
drive the finance office's loop with it. Nothing here is private Airflow: it
lists ``/api/v2/dags/~/dagRuns/~/hitlDetails`` and PATCHes a task instance's
``hitlDetails`` as the given user, exactly as the Required Actions page does.

Two ways to reach the API: :func:`in_process` (Airflow's FastAPI app in this
process, with tokens from its auth manager; for ``dag.test()``) or
:func:`over_http` (a running api-server, each user logging in with their
password at ``/auth/token``, as a person would).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

log = logging.getLogger(__name__)

# answer(detail) -> (user, role, chosen_options, params_input), or None to leave it pending.
Answer = Callable[[dict], "tuple[str, str, list[str], dict] | None"]


def hitl_path(ti: dict) -> str:
    return (
        f"/api/v2/dags/{ti['dag_id']}/dagRuns/{ti['dag_run_id']}"
        f"/taskInstances/{ti['task_id']}/{ti['map_index']}/hitlDetails"
    )


class Responder:
    """Polls the pending requests and answers those ``answer`` picks."""

    def __init__(self, client: Any, headers_for: Callable[[str, str], dict], answer: Answer) -> None:
        self.client = client
        self.headers_for = headers_for
        self.answer = answer
        self.answered: list[dict] = []  # {"subject", "user", "status", "options", "params"}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def pending(self, as_user: tuple[str, str] = ("admin", "admin")) -> list[dict]:
        r = self.client.get(
            "/api/v2/dags/~/dagRuns/~/hitlDetails",
            params={"response_received": False, "limit": 100},
            headers=self.headers_for(*as_user),
        )
        r.raise_for_status()
        return r.json().get("hitl_details", [])

    def respond(self, detail: dict, user: str, role: str, options: list[str], params: dict) -> int:
        r = self.client.patch(
            hitl_path(detail["task_instance"]),
            json={"chosen_options": options, "params_input": params},
            headers=self.headers_for(user, role),
        )
        self.answered.append(
            {"subject": detail["subject"], "user": user, "status": r.status_code, "options": options, "params": params}
        )
        return r.status_code

    def run_once(self) -> int:
        """Answer what is pending now; the number of requests answered."""
        done = 0
        for detail in self.pending():
            picked = self.answer(detail)
            if picked is not None and self.respond(detail, *picked) == 200:
                done += 1
        return done

    def start(self, poll_s: float = 0.5) -> Responder:
        def loop() -> None:
            while not self._stop.wait(poll_s):
                try:
                    self.run_once()
                except Exception:  # the API may be busy for a moment; poll again
                    log.exception("responder poll failed")

        self._thread = threading.Thread(target=loop, name="hitl-responder", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)


def in_process(answer: Answer) -> tuple[Responder, Any]:
    """A responder on Airflow's API app in this process (the app's own auth
    manager signs each user's token); returns it and the client to close."""
    import os
    import secrets

    from airflow.api_fastapi.app import create_app, get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    # A standalone run (demo, dag.test) has no api-server config: its tokens
    # need a signing key, random per process since nothing outside verifies them.
    os.environ.setdefault("AIRFLOW__API_AUTH__JWT_SECRET", secrets.token_hex(32))
    client = TestClient(create_app())
    client.__enter__()

    def headers_for(user: str, role: str) -> dict:
        token = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username=user, role=role))
        return {"Authorization": f"Bearer {token}"}

    return Responder(client, headers_for, answer), client


def over_http(base_url: str, passwords: Mapping[str, str], answer: Answer | None = None) -> tuple[Responder, Any]:
    """A responder on a running api-server: each user's token comes from
    ``POST /auth/token`` with their password (once per user); the role given to
    :meth:`Responder.respond` is ignored, the server knows it. Returns it and
    the ``httpx.Client`` to close."""
    import httpx

    client = httpx.Client(base_url=base_url, timeout=60)
    tokens: dict[str, str] = {}

    def headers_for(user: str, role: str) -> dict:
        if user not in tokens:
            r = client.post("/auth/token", json={"username": user, "password": passwords[user]})
            r.raise_for_status()
            tokens[user] = r.json()["access_token"]
        return {"Authorization": f"Bearer {tokens[user]}"}

    return Responder(client, headers_for, answer or (lambda detail: None)), client
