"""Drive the real docker-compose.yaml: engine, images, up/down, REST, mail catcher.

Everything here shells out to the Docker tools the operator uses
(docs/operations.md §1), so what passes here is what an operator runs.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
OVERRIDE = REPO / "tests" / "compose" / "standin.override.yaml"
STANDIN_AIRFLOW = "budget-monitor-standin/airflow:3.3.2-python3.11"
PROJECT = "bmcomposetest"
SERVICES = (
    "postgres",
    "redis",
    "mailpit",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-worker",
    "airflow-triggerer",
)
UP_TIMEOUT_S = 600  # measured: 120-170 s on 2 cores
RUN_TIMEOUT_S = 300  # measured: 11-30 s a month


def log(msg: str) -> None:
    print(f"[compose {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run(cmd: list[str], timeout: float, check: bool = True, **kw) -> subprocess.CompletedProcess:
    ans = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if check and ans.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {ans.returncode}:\n{ans.stdout[-3000:]}\n{ans.stderr[-3000:]}")
    return ans


def engine_up() -> bool:
    return (
        shutil.which("docker") is not None
        and subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0
    )


class Engine:
    """The Docker engine: the running one, or a dockerd started here and stopped by its pid."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Engine":
        if engine_up():
            return self
        run([str(REPO / "scripts" / "compose_host.sh")], timeout=900)
        logf = open(Path(os.environ.get("TMPDIR", "/tmp")) / "bm-compose-dockerd.log", "ab")
        self.proc = subprocess.Popen(["dockerd"], stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if engine_up():
                log(f"started dockerd (pid {self.proc.pid})")
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(1)
        self.stop()
        raise RuntimeError("dockerd did not come up (see $TMPDIR/bm-compose-dockerd.log)")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)
        log(f"stopped dockerd (pid {self.proc.pid})")


def compose_cmd() -> list[str]:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return ["docker", "compose"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_images(env_file: Path) -> dict[str, float]:
    """Stand-ins (script) then the project image (compose build); seconds each."""
    times = {}
    t = time.monotonic()
    run([str(REPO / "scripts" / "build_standin_images.sh")], timeout=1800)
    times["standin_images_s"] = round(time.monotonic() - t, 1)
    t = time.monotonic()
    run(
        [
            *compose_cmd(),
            "-p",
            PROJECT,
            "--env-file",
            str(env_file),
            "-f",
            str(REPO / "docker-compose.yaml"),
            "-f",
            str(OVERRIDE),
            "--profile",
            "dev",
            "build",
        ],
        timeout=1800,
        cwd=REPO,
    )
    times["project_image_s"] = round(time.monotonic() - t, 1)
    return times


def write_env(work: Path, **extra: str) -> Path:
    """The operator's .env: docker/make_env.py's fresh secrets plus this run's folders and ports."""
    sys.path.insert(0, str(REPO / "docker"))
    try:
        import make_env
    finally:
        sys.path.pop(0)
    text = make_env.render((REPO / ".env.example").read_text(encoding="utf-8"))
    values = {
        "AIRFLOW_BASE_IMAGE": STANDIN_AIRFLOW,
        "AIRFLOW_PROJ_DIR": str(REPO),
        "BUDGET_MONITOR_DATA_DIR": str(work / "data"),
        "AIRFLOW_LOGS_DIR": str(work / "logs"),
        **extra,
    }
    text += "".join(f"{k}={v}\n" for k, v in values.items())
    path = work / "env"
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return path


@dataclass
class Stack:
    work: Path
    env_file: Path
    api_port: int
    mail_port: int
    env: dict[str, str] = field(default_factory=dict)
    _tokens: dict[str, str] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def compose(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
        return run(
            [
                *compose_cmd(),
                "-p",
                PROJECT,
                "--env-file",
                str(self.env_file),
                "-f",
                str(REPO / "docker-compose.yaml"),
                "-f",
                str(OVERRIDE),
                "--profile",
                "dev",
                *args,
            ],
            timeout=timeout,
            check=check,
            cwd=REPO,
        )

    def container(self, service: str) -> str:
        return self.compose("ps", "-q", service, timeout=60).stdout.strip()

    def health(self) -> dict[str, str]:
        out = {}
        for svc in SERVICES:
            cid = self.container(svc)
            if not cid:
                out[svc] = "missing"
                continue
            state = json.loads(run(["docker", "inspect", "-f", "{{json .State}}", cid], timeout=30).stdout)
            out[svc] = (state.get("Health") or {}).get("Status") or state.get("Status", "?")
        return out

    def wait_healthy(self, timeout: float = UP_TIMEOUT_S) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while True:
            h = self.health()
            if all(v == "healthy" for v in h.values()):
                return h
            bad = {k: v for k, v in h.items() if v in ("unhealthy", "exited", "dead", "missing")}
            if time.monotonic() > deadline or bad:
                raise AssertionError(f"services not healthy: {h}\n{self.logs_tail()}")
            time.sleep(5)

    def logs_tail(self, lines: int = 40) -> str:
        return self.compose("logs", "--no-color", f"--tail={lines}", timeout=120, check=False).stdout[-12000:]

    def http(
        self, method: str, path: str, body: Any = None, auth: bool = True, raw: bool = False, user: str | None = None
    ) -> Any:
        req = urllib.request.Request(
            self.base + path, method=method, data=None if body is None else json.dumps(body).encode()
        )
        req.add_header("Content-Type", "application/json")
        if auth:
            req.add_header("Authorization", f"Bearer {self.token(user)}")
        with urllib.request.urlopen(req, timeout=60) as resp:
            data = resp.read()
        if raw:
            return data.decode("utf-8", "replace")
        return json.loads(data) if data else None

    def status(
        self, path: str, auth: bool = True, method: str = "GET", body: Any = None, user: str | None = None
    ) -> int:
        try:
            self.http(method, path, body, auth=auth, raw=True, user=user)
            return 200
        except urllib.error.HTTPError as exc:
            return exc.code

    @property
    def admin(self) -> str:
        return self.env["_AIRFLOW_WWW_USER_USERNAME"]

    def passwords(self) -> dict[str, str]:
        """Every user's password, from the .env the operator wrote (docker/make_env.py)."""
        return {
            **json.loads(self.env["BUDGET_MONITOR_USER_PASSWORDS"]),
            self.admin: self.env["_AIRFLOW_WWW_USER_PASSWORD"],
        }

    def token(self, user: str | None = None) -> str:
        """``user``'s JWT (default: the admin) from ``POST /auth/token`` with its password."""
        user = user or self.admin
        if user not in self._tokens:
            creds = {"username": user, "password": self.passwords()[user]}
            self._tokens[user] = self.http("POST", "/auth/token", creds, auth=False)["access_token"]
        return self._tokens[user]

    def mails(self) -> list[dict]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.mail_port}/api/v1/messages", timeout=30) as r:
            return json.loads(r.read())["messages"]

    def runs(self, dag_id: str) -> list[dict]:
        return self.http("GET", f"/api/v2/dags/{dag_id}/dagRuns?limit=100")["dag_runs"]

    def trigger(self, dag_id: str, conf: dict) -> str:
        ans = self.http("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf})
        return ans["dag_run_id"]

    def wait_run(self, dag_id: str, run_id: str, timeout: float = RUN_TIMEOUT_S) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            dr = self.http("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
            if dr["state"] in ("success", "failed"):
                return dr
            if time.monotonic() > deadline:
                raise AssertionError(f"{dag_id} {run_id} still {dr['state']} after {timeout} s\n{self.logs_tail()}")
            time.sleep(2)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        return self.http("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]


def env_values(env_file: Path) -> dict[str, str]:
    out = {}
    for line in env_file.read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.startswith("#"):
            k, v = line.split("=", 1)
            out[k] = v
    return out
