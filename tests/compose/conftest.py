"""The compose stack for tests/compose: engine, images, `up`, and `down -v` at the end.

Needs root (dockerd, debootstrap) on this machine kind. Under CI=true a
stack that cannot be brought up is a failure with the reason, never a skip.
"""

from __future__ import annotations

import os
import shutil
import sys
import time

import pytest

from compose_stack import REPO, PROJECT, Engine, Stack, build_images, env_values, free_port, log, write_env

sys.path.insert(0, str(REPO / "plugins"))  # budget_monitor_airflow.responder answers the approval


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "compose: the real docker-compose.yaml brought up with Docker (tests/compose)")


def _cannot(reason: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"compose stack unavailable under CI: {reason}", pytrace=False)
    pytest.skip(f"compose stack unavailable: {reason}")


@pytest.fixture(scope="session")
def engine():
    if os.geteuid() != 0:
        _cannot("needs root to run dockerd and build the base image")
    try:
        eng = Engine().start()
    except Exception as exc:  # noqa: BLE001 - the reason is the message
        _cannot(f"no Docker engine: {exc}")
    yield eng
    eng.stop()


@pytest.fixture(scope="module")
def stack(engine, tmp_path_factory):
    work = tmp_path_factory.mktemp("compose")
    (work / "data").mkdir()
    (work / "logs").mkdir()
    api_port, mail_port = free_port(), free_port()
    env_file = write_env(work, AIRFLOW_API_PORT=str(api_port), MAILPIT_UI_PORT=str(mail_port))
    st = Stack(work=work, env_file=env_file, api_port=api_port, mail_port=mail_port, env=env_values(env_file))
    st.compose("down", "-v", "--remove-orphans", timeout=300, check=False)  # an aborted earlier run
    times = build_images(env_file)
    t = time.monotonic()
    try:
        st.compose("up", "-d", timeout=900)
        st.wait_healthy()
        times["up_to_healthy_s"] = round(time.monotonic() - t, 1)
        st.times = times
        log(f"stack {PROJECT} healthy: {times}")
        yield st
    finally:
        t = time.monotonic()
        st.compose("down", "-v", "--remove-orphans", timeout=300, check=False)
        log(f"down -v in {time.monotonic() - t:.0f} s")
        shutil.rmtree(work, ignore_errors=True)
