"""Reference for stage c: the smallest realistic TaskFlow DAG (5 tasks, cron schedule).

What any Airflow 3 DAG file pays beyond ``import airflow.sdk`` (the @task
decorator pulls in the standard provider's PythonOperator, a cron timetable
pulls in croniter); the project's DAG files are compared with it.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import CronTriggerTimetable, dag, task


@dag(
    schedule=CronTriggerTimetable("0 6 5 * *", timezone="Asia/Shanghai"),
    start_date=pendulum.datetime(2021, 1, 1, tz="Asia/Shanghai"),
    catchup=False,
)
def bench_trivial():
    @task
    def one() -> int:
        return 1

    @task
    def add(x: int) -> int:
        return x + 1

    add(add(add(add(one()))))


bench_trivial()
