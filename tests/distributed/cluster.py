"""A native (no Docker) Airflow 3 cluster with the CeleryExecutor, for tests.

Four processes as in production (api-server, scheduler, dag-processor, celery
worker) against a throw-away PostgreSQL database and a private Redis database
number. The facts it relies on (Execution API URL, ``--skip-serve-logs``,
``/execution/health`` warm-up, heartbeat interval) are measured in
``shared/notes/airflow3-celery.md``; the same environment variable names are
used by ``docker-compose.yaml`` (``tests/test_compose.py`` checks that).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
VENV_BIN = Path(sys.executable).parent
AIRFLOW = str(VENV_BIN / "airflow")
PG_ADMIN_DSN = os.environ.get("BUDGET_MONITOR_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
# The deployment's users (docs/operations.md §1b), as the compose stack has
# them: SimpleAuthManager name -> role, passwords fresh per cluster.
USERS = {"admin": "admin", "viewer": "viewer", "approver": "user", "contact": "user"}
APPROVERS = "approver"

# The variables every Airflow process of the stack gets; docker-compose.yaml
# must set the same names (tests/test_compose.py).
COMMON_ENV_NAMES = (
    "AIRFLOW__CORE__EXECUTOR",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC",
    "AIRFLOW__CELERY__BROKER_URL",
    "AIRFLOW__CELERY__RESULT_BACKEND",
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
    "AIRFLOW__API_AUTH__JWT_SECRET",
    "AIRFLOW__CORE__LOAD_EXAMPLES",
    "AIRFLOW_CONN_SMTP_DEFAULT",
    "AIRFLOW_CONN_BUDGET_MONITOR_DB",
    "BUDGET_MONITOR_FUNDS_DIR",
    "BUDGET_MONITOR_REPORTS_DIR",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_url(db: str, driver: str = "postgresql+psycopg") -> str:
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].split("://", 1)[1]
    return f"{driver}://{base}/{db}"


def pg_admin(sql: str, params: tuple = ()) -> list[tuple]:
    """Run one statement on the maintenance database in autocommit mode."""
    import psycopg

    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        cur = conn.execute(sql, params)
        return cur.fetchall() if cur.description else []


def service_check() -> str | None:
    """None when PostgreSQL and Redis answer, else why not."""
    try:
        pg_admin("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - any failure means "down"
        return f"PostgreSQL at {PG_ADMIN_DSN} is not reachable: {exc}"
    try:
        import redis

        redis.Redis(REDIS_HOST, REDIS_PORT, socket_timeout=2).ping()
    except Exception as exc:  # noqa: BLE001
        return f"Redis at {REDIS_HOST}:{REDIS_PORT} is not reachable: {exc}"
    return None


def create_database(name: str, template: str | None = None) -> None:
    tmpl = f' TEMPLATE "{template}"' if template else ""
    pg_admin(f'CREATE DATABASE "{name}"{tmpl}')


def drop_database(name: str) -> None:
    pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def migrated_template(env: dict[str, str]) -> str:
    """A PostgreSQL database with Airflow's schema, migrated once and reused.

    ``airflow db migrate`` costs 6-10 s; ``CREATE DATABASE .. TEMPLATE`` 0.1 s.
    The template is built under a temporary name and renamed when complete,
    so an interrupted session never leaves a half-migrated template behind.
    """
    from importlib.metadata import version

    name = "bm_airflow_tmpl_" + version("apache-airflow").replace(".", "_")
    if pg_admin("SELECT 1 FROM pg_database WHERE datname = %s", (name,)):
        return name
    building = f"{name}_build_{uuid.uuid4().hex[:6]}"
    create_database(building)
    try:
        menv = dict(
            env,
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=pg_url(building),
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC=pg_url(building, "postgresql+psycopg_async"),
        )
        _run_checked([AIRFLOW, "db", "migrate"], env=menv)
        pg_admin(f'ALTER DATABASE "{building}" RENAME TO "{name}"')
    except Exception:
        drop_database(building)
        if not pg_admin("SELECT 1 FROM pg_database WHERE datname = %s", (name,)):
            raise  # nobody else built it meanwhile
    return name


def _run_checked(cmd: list[str], **kw: Any) -> None:
    ans = subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kw)
    if ans.returncode:
        raise RuntimeError(f"{cmd} failed ({ans.returncode}):\n{ans.stdout[-3000:]}\n{ans.stderr[-3000:]}")


def free_redis_db() -> int:
    """A Redis database number that is empty now (others share this Redis)."""
    import random

    import redis

    candidates = list(range(4, 16))
    random.shuffle(candidates)
    for n in candidates:
        if redis.Redis(REDIS_HOST, REDIS_PORT, db=n).dbsize() == 0:
            return n
    raise RuntimeError("no empty Redis database number in 4..15")


def stop_process(proc: subprocess.Popen, timeout: float = 20) -> None:
    """SIGTERM the process group, then SIGKILL what is left of it."""
    if proc.poll() is not None:
        _kill_group(proc.pid, signal.SIGKILL)
        return
    _kill_group(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        pass
    _kill_group(proc.pid, signal.SIGKILL)
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        pass


def _kill_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def process_tree(pid: int) -> set[int]:
    try:
        p = psutil.Process(pid)
        return {pid} | {c.pid for c in p.children(recursive=True)}
    except psutil.Error:
        return set()


@dataclass
class Cluster:
    """A running stack; build it with :func:`start_cluster`."""

    home: Path
    env: dict[str, str]
    port: int
    db_name: str
    redis_db: int
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    workers: dict[str, str] = field(default_factory=dict)  # process name -> Celery node name
    passwords: dict[str, str] = field(default_factory=dict)  # user -> password (USERS)
    _tokens: dict[str, str] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_path(self, name: str) -> Path:
        return self.home / f"{name}.log"

    # -- processes -----------------------------------------------------
    def start(self, name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        log = open(self.log_path(name), "ab")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            [AIRFLOW, *args],
            env={**self.env, **(env or {})},
            cwd=self.home,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: stopped as a whole
        )
        log.close()
        self.procs[name] = proc
        return proc

    def start_worker(self, name: str = "worker", concurrency: int = 2) -> str:
        """Start a Celery worker; returns its Celery node name, e.g. ``worker_a@bm-1a2b3c``.

        Every worker of the stack runs on this one machine, so the task
        instances' ``hostname`` (what the UI and the REST API show) is made
        the worker's node name (``worker_name.hostname``) to tell them apart.
        """
        node = f"{name}@bm-{uuid.uuid4().hex[:6]}"
        env = {
            "BM_CELERY_WORKER_NAME": node,
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "worker_name.hostname",
            "PYTHONPATH": os.pathsep.join(p for p in (str(HERE), self.env.get("PYTHONPATH", "")) if p),
        }
        self.start(name, "celery", "worker", "--skip-serve-logs", "-c", str(concurrency), "-H", node, env=env)
        self.workers[name] = node
        return node

    def stop_worker(self, name: str) -> None:
        """Stop a worker gracefully (SIGTERM, then SIGKILL after a timeout)."""
        stop_process(self.procs.pop(name))
        self.workers.pop(name, None)

    def celery_control(self) -> Any:
        """Celery's remote control over this stack's broker (cancel/add a worker's consumer)."""
        from celery import Celery

        return Celery(broker=self.env["AIRFLOW__CELERY__BROKER_URL"]).control

    def kill(self, name: str) -> None:
        """Crash a process (SIGKILL to it and every descendant), as a lost machine would."""
        proc = self.procs.pop(name)
        for pid in process_tree(proc.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _kill_group(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def stop(self) -> None:
        for name in list(self.procs)[::-1]:
            stop_process(self.procs.pop(name))

    def assert_alive(self) -> None:
        dead = {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}
        if dead:
            tails = {n: self.log_path(n).read_text(errors="replace")[-3000:] for n in dead}
            raise AssertionError(f"Airflow processes exited: {dead}\n{tails}")

    # -- REST ------------------------------------------------------------
    def http(
        self, method: str, path: str, body: Any = None, auth: bool = True, timeout: float = 30, user: str = "admin"
    ) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base_url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if auth:
            req.add_header("Authorization", f"Bearer {self.token(user)}")
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            ctype = resp.headers.get("Content-Type", "")
        if "json" in ctype:
            return json.loads(raw)
        return raw.decode("utf-8", errors="replace")

    def token(self, user: str = "admin") -> str:
        """A JWT of ``user`` from ``POST /auth/token`` with its password, as a person logs in."""
        if user not in self._tokens:
            creds = {"username": user, "password": self.passwords[user]}
            self._tokens[user] = self.http("POST", "/auth/token", creds, auth=False)["access_token"]
        return self._tokens[user]

    def status(self, method: str, path: str, body: Any = None, user: str | None = "admin") -> int:
        """The HTTP status of a request as ``user`` (None: anonymous)."""
        try:
            self.http(method, path, body, auth=user is not None, user=user or "admin")
            return 200
        except urllib.error.HTTPError as exc:
            return exc.code

    def wait_ready(self, timeout: float = 180) -> None:
        """api-server up (incl. its lazily built Execution API) and the DAGs parsed."""
        deadline = time.monotonic() + timeout
        while True:
            self.assert_alive()
            try:
                self.http("GET", "/execution/health", auth=False, timeout=10)
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                if time.monotonic() > deadline:
                    raise TimeoutError("api-server did not become healthy") from None
                time.sleep(1)

    def wait_dags(self, dag_ids: Iterable[str], timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        want = set(dag_ids)
        while True:
            self.assert_alive()
            dags = self.http("GET", "/api/v2/dags?limit=100")["dags"]
            if want <= {d["dag_id"] for d in dags}:
                return
            errors = self.http("GET", "/api/v2/importErrors")
            if errors.get("import_errors"):
                raise AssertionError(f"DAG import errors: {errors['import_errors']}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"DAGs {want} not parsed; have {[d['dag_id'] for d in dags]}")
            time.sleep(1)

    def unpause(self, dag_id: str) -> None:
        self.http("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})

    def trigger(self, dag_id: str, conf: dict | None = None, logical_date: str | None = None) -> str:
        body = {"logical_date": logical_date, "conf": conf or {}}
        return self.http("POST", f"/api/v2/dags/{dag_id}/dagRuns", body)["dag_run_id"]

    def dag_run(self, dag_id: str, run_id: str) -> dict:
        return self.http("GET", f"/api/v2/dags/{dag_id}/dagRuns/{urllib.request.quote(run_id)}")

    def dag_runs(self, dag_id: str) -> list[dict]:
        return self.http("GET", f"/api/v2/dags/{dag_id}/dagRuns?limit=100")["dag_runs"]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{urllib.request.quote(run_id)}/taskInstances?limit=100"
        return self.http("GET", path)["task_instances"]

    def task_instances_all(self, dag_id: str, run_id: str) -> list[dict]:
        """Every task instance of the run (mapped ones included), page by page."""
        out: list[dict] = []
        while True:
            path = (
                f"/api/v2/dags/{dag_id}/dagRuns/{urllib.request.quote(run_id)}/taskInstances"
                f"?limit=100&offset={len(out)}"
            )
            page = self.http("GET", path)["task_instances"]
            out += page
            if len(page) < 100:
                return out

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 300) -> str:
        deadline = time.monotonic() + timeout
        while True:
            self.assert_alive()
            state = self.dag_run(dag_id, run_id)["state"]
            if state in ("success", "failed"):
                return state
            if time.monotonic() > deadline:
                tis = [(t["task_id"], t["map_index"], t["state"]) for t in self.task_instances(dag_id, run_id)]
                raise TimeoutError(f"{dag_id}/{run_id} still {state} after {timeout}s: {tis}")
            time.sleep(1)

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int = -1) -> str:
        path = (
            f"/api/v2/dags/{dag_id}/dagRuns/{urllib.request.quote(run_id)}/taskInstances/{task_id}"
            f"/logs/{try_number}?map_index={map_index}&full_content=true"
        )
        ans = self.http("GET", path)
        if isinstance(ans, dict):
            content = ans.get("content")
            if isinstance(content, list):
                return "\n".join(c.get("event", "") if isinstance(c, dict) else str(c) for c in content)
            return str(content)
        return ans


def cluster_env(home: Path, db_name: str, redis_db: int, port: int, extra: dict[str, str]) -> dict[str, str]:
    """The environment of every process of the stack."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "_AIRFLOW"))}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": pg_url(db_name),
            # Airflow derives the async URL as asyncpg, which is not installed;
            # psycopg 3 has an async dialect of its own.
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": pg_url(db_name, "postgresql+psycopg_async"),
            "AIRFLOW__CELERY__BROKER_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/{redis_db}",
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + pg_url(db_name),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}/",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(40),
            # Real users and roles (never SIMPLE_AUTH_MANAGER_ALL_ADMINS): see write_users.
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{n}:{r}" for n, r in USERS.items()),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "simple_auth_manager_passwords.json"),
            "BUDGET_MONITOR_APPROVERS": APPROVERS,
            "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "15",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
            "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}",
        }
    )
    env.update(extra)
    return env


def write_users(env: dict[str, str]) -> dict[str, str]:
    """The users' passwords file, written as the operator of a native cluster
    does (docs/operations.md §1b): ``docker/init.py users FILE`` with the
    passwords in its environment only. Fresh passwords; returns them."""
    passwords = {name: secrets.token_urlsafe(18) for name in USERS}
    secret_env = {
        "_AIRFLOW_WWW_USER_USERNAME": "admin",
        "_AIRFLOW_WWW_USER_PASSWORD": passwords["admin"],
        "BUDGET_MONITOR_USER_PASSWORDS": json.dumps({n: p for n, p in passwords.items() if n != "admin"}),
    }
    path = env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]
    _run_checked([sys.executable, str(REPO / "docker" / "init.py"), "users", path], env={**env, **secret_env})
    return passwords


def start_cluster(
    home: Path, extra_env: dict[str, str] | None = None, worker: bool = True, workers: dict[str, int] | None = None
) -> Cluster:
    """Fresh metadata DB from the migrated template, then the four processes
    (``workers``: Celery workers by name with their concurrency, instead of the one ``worker``)."""
    home.mkdir(parents=True, exist_ok=True)
    db_name = f"bm_airflow_{uuid.uuid4().hex[:10]}"
    port = free_port()
    env = cluster_env(home, db_name, free_redis_db(), port, extra_env or {})
    template = migrated_template(env)
    create_database(db_name, template)
    cluster = Cluster(
        home=home,
        env=env,
        port=port,
        db_name=db_name,
        redis_db=int(env["AIRFLOW__CELERY__BROKER_URL"].rsplit("/", 1)[1]),
    )
    try:
        cluster.passwords = write_users(env)
        # `db migrate` on the copy is a no-op check, but it also writes
        # airflow.cfg once so the four processes do not race to create it.
        _run_checked([AIRFLOW, "db", "migrate"], env=env, cwd=home)
        cluster.start("api-server", "api-server", "--host", "127.0.0.1", "--port", str(port))
        cluster.start("scheduler", "scheduler")
        cluster.start("dag-processor", "dag-processor")
        for name, concurrency in (workers or ({"worker": 2} if worker else {})).items():
            cluster.start_worker(name, concurrency)
        cluster.wait_ready()
    except BaseException:
        teardown_cluster(cluster)
        raise
    return cluster


def teardown_cluster(cluster: Cluster) -> None:
    cluster.stop()
    drop_database(cluster.db_name)
    try:
        import redis

        redis.Redis(REDIS_HOST, REDIS_PORT, db=cluster.redis_db).flushdb()
    except Exception:  # noqa: BLE001 - best effort cleanup
        pass


def main(argv: list[str] | None = None) -> int:
    """Run the native stack by hand (no Docker):

    python tests/distributed/cluster.py smoke   # smoke DAG end to end, then stop (~45 s)
    python tests/distributed/cluster.py serve   # our dags/ on the example funds until Ctrl-C
    """
    import argparse
    import tempfile

    p = argparse.ArgumentParser(description=main.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["smoke", "serve"])
    p.add_argument("--home", default=None, help="state folder (default: a new temp dir)")
    args = p.parse_args(argv)
    problem = service_check()
    if problem:
        print(problem, file=sys.stderr)
        return 2
    home = Path(args.home or tempfile.mkdtemp(prefix="bm-native-"))
    extra: dict[str, str] = {}
    if args.mode == "smoke":
        extra["AIRFLOW__CORE__DAGS_FOLDER"] = str(Path(__file__).parent / "smoke_dags")
    t0 = time.monotonic()
    cl = start_cluster(home, extra)
    try:
        users = ", ".join(f"{n} ({USERS[n]}) {p}" for n, p in cl.passwords.items())
        print(f"ready in {time.monotonic() - t0:.0f} s: {cl.base_url}, logs in {home}; users: {users}", flush=True)
        if args.mode == "smoke":
            cl.wait_dags(["smoke_celery"])
            cl.unpause("smoke_celery")
            run_id = cl.trigger("smoke_celery")
            state = cl.wait_run("smoke_celery", run_id)
            print(f"smoke_celery {run_id}: {state} after {time.monotonic() - t0:.0f} s", flush=True)
            return 0 if state == "success" else 1
        while True:
            cl.assert_alive()
            time.sleep(5)
    except KeyboardInterrupt:
        return 0
    finally:
        teardown_cluster(cl)


if __name__ == "__main__":
    sys.exit(main())
