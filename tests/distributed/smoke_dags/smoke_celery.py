"""Smoke DAG for the native Celery harness: three trivial tasks in a chain."""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task


@dag(
    schedule=None,
    start_date=pendulum.datetime(2021, 1, 1, tz="Asia/Shanghai"),
    catchup=False,
    tags=["smoke"],
    default_args={"owner": "finance-it", "retries": 1},
    doc_md=__doc__,
)
def smoke_celery():
    @task
    def first() -> int:
        import os

        return os.getpid()

    @task
    def second(pid: int) -> list[int]:
        import os

        return [pid, os.getpid(), os.getppid()]

    @task
    def third(pids: list[int]) -> list[int]:
        return pids

    third(second(first()))


smoke_celery()
