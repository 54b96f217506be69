"""
### 专项资金月度执行监控 (budget_monthly_monitor)

On the 5th of each month at 06:00 (Asia/Shanghai) closes the **previous**
month for every fund directory in the inbox (`BUDGET_MONITOR_FUNDS_DIR`):

1. `plan_month`: the month to close (Param `month` overrides it).
2. `discover_funds`: fund directories (Param `fund` picks one); pulls the
   month from the SQL source first when connection `budget_monitor_source` exists.
   No fund directory of the month's year (a scheduled run before the year's
   funds are dropped) is not a failure: the run logs "nothing to close",
   skips the load and the close, and ends green, so it never holds later
   runs (`max_active_runs=1`). A `fund` that matches nothing fails at once.
3. `load_funds` (mapped, one task per batch of `funds_per_task` funds): read,
   validate, load each new file. A bad file goes to `<fund>/quarantine/` and
   its Chinese rejection notice into the outbox; the task fails at once (no
   retry) after the batch's other files and funds landed. A technical error
   of one fund does not stop the batch either; the task then fails naming
   every such fund and is retried (ops is told by `RejectionNotifier`).
4. `close_month`: execution vs 序时进度, alerts into the outbox (runs for all
   funds even when a load failed). One task, since it follows every load; it
   spreads its funds over the worker's cores itself (`pipeline.close_months`,
   env `BUDGET_MONITOR_CLOSE_WORKERS`, default all cores, ≥ 75 funds each).
5. `send_alerts`: outbox (alerts and rejection notices) flushed through
   `smtp_default` (SmtpHook); a mail that fails stays pending for the next flush.
6. `publish_close`: once every load and the close succeeded (mail is not a
   condition), emits asset `budget_monitor://monthly_close` with
   `{year, month}`; the December close starts `budget_year_end_report`.

**Granularity** (measured in `bench/RESULTS.md`, stage d). Loading is
mapped per *batch* of funds (Param `funds_per_task`, default 100), not per
fund: a task process pays ~10 s before its first fund (Airflow start-up, the
Great Expectations import), while a fund in a batch costs 0.1–0.2 s, because
the batch's small files of one kind are validated in one GX run
(`pipeline.load_months`; alone, a fund's three files cost ~0.5 s of GX runs).
100 funds per task keeps the fixed part near the work; 2,000 funds make 20
tasks for the executor to spread over its slots, a department with a few
funds one task. Smaller batches retry faster; larger ones waste less.
The close of 2,000 funds (one matplotlib chart per fund with alerts) took
172 s on two processes where one took ~300 s; the whole month 440 s.

Store: connection `budget_monitor_db`, else env `BUDGET_MONITOR_DB_URL`.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import CronTriggerTimetable, Param, dag, get_current_context, task

from budget_monitor_airflow import settings
from budget_monitor_airflow.assets import MONTHLY_CLOSE


@dag(
    schedule=CronTriggerTimetable("0 6 5 * *", timezone="Asia/Shanghai"),
    start_date=pendulum.datetime(2021, 1, 1, tz="Asia/Shanghai"),
    catchup=False,
    max_active_runs=1,  # months close in order: a month loads files dated up to its end
    doc_md=__doc__,
    tags=["budget", "monthly"],
    default_args=settings.default_args(),
    params={
        "month": Param(
            "",
            type="string",
            pattern=r"^(\d{4}-\d{2})?$",
            title="月份 YYYY-MM",
            description="要结账的月份；留空则为运行日期的上一个月",
        ),
        "fund": Param("", type="string", title="专项资金", description="只处理此资金代码或目录名；留空为全部"),
        "funds_per_task": Param(100, type="integer", minimum=1, maximum=2000, title="每个任务处理的资金数"),
    },
)
def budget_monthly_monitor():
    @task
    def plan_month() -> str:
        from budget_monitor_airflow.periods import month_to_process

        return month_to_process(get_current_context())

    @task
    def discover_funds(month: str) -> list[list[str]]:
        from budget_monitor_airflow.monthly import discover
        from budget_monitor_airflow.periods import batches

        params = get_current_context()["params"]
        return batches(discover(month, params["fund"]), params["funds_per_task"])

    @task(pool=settings.pool(), map_index_template="{{ funds_label }}")
    def load_funds(batch: list[str], month: str) -> list[dict]:
        from pathlib import Path

        from budget_monitor_airflow.monthly import load_batch

        get_current_context()["funds_label"] = ",".join(Path(d).name for d in batch)
        return load_batch(batch, month)

    @task(trigger_rule="all_done")
    def close_month(month: str | None, batches: list[list[str]] | None) -> list[dict]:
        from budget_monitor_airflow.monthly import close, funds_to_close

        return close(funds_to_close(month, batches), month)

    @task(trigger_rule="all_done")
    def send_alerts() -> int:
        from budget_monitor_airflow.monthly import send_alerts as flush

        return flush()

    @task(outlets=[MONTHLY_CLOSE])
    def publish_close(month: str) -> str:
        year, mon = (int(p) for p in month.split("-"))
        get_current_context()["outlet_events"][MONTHLY_CLOSE].extra = {"year": year, "month": mon, "period": month}
        return month

    month = plan_month()
    funds = discover_funds(month)
    loaded = load_funds.partial(month=month).expand(batch=funds)
    closed = close_month(month, funds)
    sent = send_alerts()
    loaded >> closed >> sent
    # Published once every load and the close succeeded: a rejected file
    # (December: the year-end report) blocks it until the month is rerun.
    # Mail is not a condition: a failed send_alerts stays visible as failed
    # and its messages stay pending in the outbox for the next flush.
    [loaded, closed] >> publish_close(month)


budget_monthly_monitor()
