"""
### 专项资金月度执行监控 (budget_monthly_monitor)

On the 5th of each month at 06:00 (Asia/Shanghai) closes the **previous**
month for every fund directory in the inbox (`BUDGET_MONITOR_FUNDS_DIR`):

1. `plan_month`: the month to close (Param `month` overrides it).
2. `discover_funds`: fund directories (Param `fund` picks one).
   No fund directory of the month's year (a scheduled run before the year's
   funds are dropped) is not a failure: the run logs "nothing to close",
   skips the load and the close, and ends green, so it never holds later
   runs (`max_active_runs=1`). A `fund` that matches nothing fails at once.
   `pull_funds` (mapped, one task per batch): each fund's month is pulled
   from its source (fund.yaml `source`: the dropped files, a SQL database,
   the treasury payment system's HTTP/JSON export; a fund without one uses
   connection `budget_monitor_source` when it exists) into its directory.
   A fund whose source fails fails its task, naming the fund (retried, then
   ops is told); `pulled_funds` (all_done) passes the other funds on, and
   the failed one is neither loaded nor closed this run.
3. `load_funds` then `close_funds`, mapped together per batch of
   `funds_per_task` funds (task group `fund_batch`, one map index per batch):
   - `load_funds`: read, validate, load each new file. A bad file goes to
     `<fund>/quarantine/` and its Chinese rejection notice into the outbox;
     the task fails at once (no retry) after the batch's other files and
     funds landed. A technical error of one fund does not stop the batch
     either; the task then fails naming every such fund and is retried (ops
     is told by `RejectionNotifier`).
   - `close_funds` (`all_done`: it closes what landed even when its load
     failed): execution vs 序时进度 of each fund of the batch, alerts into the
     outbox. Batch *i*'s close waits for batch *i*'s load only, not for the
     other batches: a fund's close reads only that fund's rows in the store
     (its allocations, payments, queued alert keys, under the fund's lock),
     and no fund is in two batches, so another batch's load cannot change
     what it computes. Closes of early batches thus run while later batches
     still load.
   - `build_data_docs` (`all_done`, beside the close): each fund's Data Docs
     under `<fund>/data_docs/` rendered from the results its load recorded,
     one Chinese page per validated file with every rule described (no CDN:
     the pages load nothing from outside). Served by the 隔离区 page
     (`/budget-monitor/docs/<fund>/`) and linked from the rejection notice
     (`BUDGET_MONITOR_DOCS_URL`). Not a condition of `publish_close`.
4. `gather_digests` (`all_done`, after every close): the alerts the closes
   held for the monthly digest (fund.yaml `alerts.mode: digest`, the
   default) become one mail per recipient (finance office and unit
   contacts, every fund and unit), once per (recipient, month); alerts held
   after a recipient's digest was made go out in a supplement.
   `send_alerts`: then (`all_done`, after the Data Docs too: a rejection
   notice links its file's page) the outbox (alerts, digests and
   rejection notices) flushed once through `smtp_default` (SmtpHook); a mail
   that fails stays pending for the next flush.
5. `publish_close`: once every load and every close succeeded (mail is not
   a condition), emits asset `budget_monitor://monthly_close` with
   `{year, month}`; the December close starts `budget_year_end_report`.

A rerun changes nothing and mails nothing twice: files are skipped by
content hash, the close recomputes the same figures, and an alert is queued
once per (fund, unit, period, kind) key and sent once, a digest once per
(recipient, month). When `discover_funds`
fails, `pulled_funds` fails too and the batch tasks are never expanded
(Airflow marks them `upstream_failed`; the reason is in `discover_funds`' log).

**Granularity** (measured in `bench/RESULTS.md`, stage d). Loading and
closing are mapped per *batch* of funds (Param `funds_per_task`, default
100), not per fund: a task process pays seconds before its first fund
(Airflow start-up; the Great Expectations import for a load; pandas,
SQLAlchemy and matplotlib for a close), while a fund in a batch costs
0.1–0.2 s to load, because the batch's small files of one kind are
validated in one GX run (`pipeline.load_months`). 100 funds per task keeps
the fixed part near the work; 2,000 funds make 20 loads and 20 closes for
the executor to spread over its slots (CeleryExecutor: over every worker),
a department with a few funds one of each. Smaller batches retry faster;
larger ones waste less. A close task closes its batch in its own process,
one fund after the other: the parallelism is the executor's (figures:
bench/RESULTS.md, stages d and d_celery).

Store: connection `budget_monitor_db`, else env `BUDGET_MONITOR_DB_URL`.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import CronTriggerTimetable, Param, dag, get_current_context, task, task_group

from budget_monitor_airflow import settings
from budget_monitor_airflow.assets import MONTHLY_CLOSE
from budget_monitor_airflow.periods import TZ


@dag(
    schedule=CronTriggerTimetable("0 6 5 * *", timezone=TZ),
    start_date=pendulum.datetime(2021, 1, 1, tz=TZ),
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
    def pull_funds(batch: list[str], month: str) -> list[str]:
        from budget_monitor_airflow.monthly import pull_batch
        from budget_monitor_airflow.periods import batch_label

        get_current_context()["funds_label"] = batch_label(batch)
        return pull_batch(batch, month)

    @task(trigger_rule="all_done")
    def pulled_funds(month: str | None, batches: list[list[str]] | None) -> list[list[str]]:
        from budget_monitor_airflow.monthly import ready_batches

        return ready_batches(month, batches)

    @task(pool=settings.pool(), map_index_template="{{ funds_label }}")
    def load_funds(batch: list[str], month: str) -> list[dict]:
        from budget_monitor_airflow.monthly import load_batch
        from budget_monitor_airflow.periods import batch_label

        get_current_context()["funds_label"] = batch_label(batch)
        return load_batch(batch, month)

    @task(trigger_rule="all_done", pool=settings.pool(), map_index_template="{{ funds_label }}")
    def close_funds(batch: list[str], month: str) -> list[dict]:
        from budget_monitor_airflow.monthly import close
        from budget_monitor_airflow.periods import batch_label

        get_current_context()["funds_label"] = batch_label(batch)
        return close(batch, month)

    @task(trigger_rule="all_done", map_index_template="{{ funds_label }}")
    def build_data_docs(batch: list[str]) -> int:
        from budget_monitor_airflow.monthly import build_docs
        from budget_monitor_airflow.periods import batch_label

        get_current_context()["funds_label"] = batch_label(batch)
        return build_docs(batch)

    # prefix_group_id=False: the tasks keep their ids (load_funds, close_funds, build_data_docs).
    @task_group(prefix_group_id=False)
    def fund_batch(batch: list[str], month: str) -> list:
        """One batch of funds: its load, then its own close and Data Docs (map index i after load i only)."""
        loaded = load_funds(batch, month)
        closed = close_funds(batch, month)
        docs = build_data_docs(batch)
        loaded >> [closed, docs]
        return [loaded, closed, docs]

    @task(trigger_rule="all_done")
    def gather_digests(month: str | None) -> int:
        from budget_monitor_airflow.monthly import gather

        return gather(month)

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
    pulled = pull_funds.partial(month=month).expand(batch=funds)
    ready = pulled_funds(month, funds)
    pulled >> ready
    loaded, closed, docs = fund_batch.partial(month=month).expand(batch=ready)
    # After every batch's close: the month's digests (one per recipient), then
    # one flush of the rejection notices, alerts and digests they queued
    # (after the Data Docs too: a rejection notice links its file's page).
    digests = gather_digests(month)
    sent = send_alerts()
    [loaded, closed] >> digests >> sent
    [loaded, closed, docs] >> sent
    # Published once every pull, load and close succeeded: a rejected file or
    # a fund whose pull failed (December: the year-end report) blocks it until
    # the month is rerun. Mail is not a condition: a failed send_alerts stays
    # visible as failed and its messages stay pending in the outbox for the next flush.
    published = publish_close(month)
    [loaded, closed] >> published  # the Data Docs are a view: not a condition of the close
    pulled >> published


budget_monthly_monitor()
