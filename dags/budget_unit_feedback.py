"""
### 核实反馈 (budget_unit_feedback)

Runs after every monthly close (asset `budget_monitor://monthly_close`); at
the close of March, June, September and December it asks each budget unit
whose cumulative execution lags the pace at that quarter end for the cause
and its measures. Other months end at once.

1. `choose_month`: the closed month (Param `month` overrides it).
2. `plan_requests`: opens the requests in the store, one per (fund, unit,
   year, quarter): a rerun of the month asks nobody twice and keeps the
   first deadline.
3. `ask_units` (mapped, Human-in-the-loop: **Required Actions** in the UI):
   a form with 原因 and 整改措施, assigned to the unit's account(s) in the
   department's contacts file, else to anyone who may answer (the finance
   office; never a Viewer). The answer is stored the moment it is given,
   with Airflow's record of who and when. Deadline:
   `BUDGET_MONITOR_FEEDBACK_DAYS` (default 10 days), enforced by the scheduler.
   The unit's contact is mailed the request (To, Cc the finance office; the
   office when the unit has none): figures, deadline, and the task's Required
   Actions page under `BUDGET_MONITOR_UI_URL` (sent by `plan_requests`
   through the outbox: once per unit, quarter and kind, whatever reruns).
4. `remind`: the requests not answered by the deadline are reminded once.
5. `ask_again` (mapped, Human-in-the-loop): the reminder, same form, same
   deadline again, mailed as 【催办】 by `remind`; still no answer closes the request as unanswered, and
   the year-end report falls back to fund.yaml `lag_causes` for that
   quarter (and says so).

The year-end 存在问题 and 改进意见 quote the recorded answers.
Store: connection `budget_monitor_db`, else env `BUDGET_MONITOR_DB_URL`.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, get_current_context, task

from budget_monitor_airflow import settings
from budget_monitor_airflow.assets import MONTHLY_CLOSE
from budget_monitor_airflow.periods import TZ
from budget_monitor_airflow.operators import FeedbackRequestOperator


def _ask(req: dict) -> dict:
    from budget_monitor_airflow.feedback import hitl_request

    return {**hitl_request(req), "request": req}


@dag(
    schedule=[MONTHLY_CLOSE],
    start_date=pendulum.datetime(2021, 1, 1, tz=TZ),
    catchup=False,
    max_active_runs=8,  # a quarter's requests wait days; the next quarter must not queue behind them
    doc_md=__doc__,
    tags=["budget", "feedback"],
    default_args=settings.default_args(),
    params={
        "month": Param("", type="string", pattern=r"^(\d{4}-\d{2})?$", title="月份 YYYY-MM",
                       description="结账月份；留空则取触发本次运行的月结"),
        "fund": Param("", type="string", title="专项资金", description="只处理此资金代码或目录名；留空为全部"),
    },
)  # fmt: skip
def budget_unit_feedback():
    @task
    def choose_month() -> str:
        from airflow.sdk.exceptions import AirflowSkipException

        from budget_monitor_airflow.periods import closed_month

        month = closed_month(get_current_context())
        if month is None:
            raise AirflowSkipException("no closed month given: nothing to ask")
        return month

    @task
    def plan_requests(month: str) -> list[dict]:
        from budget_monitor_airflow.feedback import mail_requests, plan

        context = get_current_context()
        requests = plan(month, context["params"]["fund"])
        # Mailed here, before ask_units waits (exactly once: the outbox).
        mail_requests(requests, task_id="ask_units", context=context)
        return requests

    @task
    def remind(outcomes: list[dict]) -> list[dict]:
        from budget_monitor_airflow.feedback import mail_requests
        from budget_monitor_airflow.feedback import remind as remind_once

        # Indexed, not iterated: iterating the lazy XCom sequence probes one past
        # its end, which Airflow logs as an error.
        reminders = remind_once([outcomes[i] for i in range(len(outcomes))])
        mail_requests(reminders, task_id="ask_again", context=get_current_context(), reminder=True)
        return reminders

    requests = plan_requests(choose_month())
    first = FeedbackRequestOperator.partial(
        task_id="ask_units",
        response_timeout=settings.feedback_deadline(),
        map_index_template="{{ task.request['unit'] }} {{ task.request['quarter_name'] }}",
    ).expand_kwargs(requests.map(_ask))
    reminders = remind(first.output)
    FeedbackRequestOperator.partial(
        task_id="ask_again",
        final=True,
        response_timeout=settings.feedback_deadline(),
        map_index_template="{{ task.request['unit'] }} {{ task.request['quarter_name'] }}（催办）",
    ).expand_kwargs(reminders.map(_ask))


budget_unit_feedback()
