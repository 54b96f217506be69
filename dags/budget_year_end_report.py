"""
### 专项资金年度绩效自评 (budget_year_end_report)

Runs when `budget_monthly_monitor` publishes the **December** close (asset
`budget_monitor://monthly_close` with `month = 12`); closes of other months
start a run that skips at once. Trigger it by hand with Param `year` to
(re)build a year at any time.

1. `choose_year`: Param `year`, else the year of the December close.
2. `list_funds`: fund directories in `BUDGET_MONITOR_FUNDS_DIR` (Param `fund` picks one).
3. `build_report` (mapped per fund): a **draft** (every output marked 草稿):
   `self_evaluation.json`, `.docx`, `.html`, `.md`, `.xlsx` and charts into
   `BUDGET_MONITOR_REPORTS_DIR/<fund>/<year>/`. Refused until December is closed.
4. `approve_report` (mapped per fund, Human-in-the-loop: **Required Actions**):
   the finance office's approver (`BUDGET_MONITOR_APPROVERS`; a Viewer never
   can) chooses 批准 or 退回 with a comment. 批准: the final report is
   written, with who approved and when in its provenance, and its mail
   queued. 退回: the decision and comment are recorded; the draft waits for
   corrected data and a rerun. Every decision is kept in the store.
5. `email_report` (mapped per fund): sends the approved report's mail
   (`.docx` report and `.xlsx` 自评表 attached) to the fund's `recipients`
   through `smtp_default`, exactly once (outbox); skipped when sent back.
   A failed mail retries without rebuilding the report.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, get_current_context, task

from budget_monitor_airflow import settings
from budget_monitor_airflow.assets import MONTHLY_CLOSE
from budget_monitor_airflow.periods import TZ
from budget_monitor_airflow.operators import ReportApprovalOperator


def _approval(report: dict) -> dict:
    from budget_monitor_airflow.feedback import approval_request

    return {**approval_request(report), "report": report}


@dag(
    schedule=[MONTHLY_CLOSE],
    start_date=pendulum.datetime(2021, 1, 1, tz=TZ),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["budget", "year-end"],
    default_args=settings.default_args(),
    params={
        "year": Param(
            None,
            type=["null", "integer"],
            minimum=2000,
            maximum=2100,
            title="年度",
            description="留空：由十二月月结触发时取其年度，手动运行时取上一年",
        ),
        "fund": Param("", type="string", title="专项资金", description="只处理此资金代码或目录名；留空为全部"),
    },
)
def budget_year_end_report():
    @task
    def choose_year() -> int:
        from airflow.sdk.exceptions import AirflowSkipException

        from budget_monitor_airflow.year_end import year_from_context

        year = year_from_context(get_current_context())
        if year is None:
            raise AirflowSkipException("not a December close: no year-end report")
        return year

    @task
    def list_funds(year: int) -> list[str]:
        from budget_monitor_airflow.year_end import fund_dirs

        return fund_dirs(year, get_current_context()["params"]["fund"])

    @task(pool=settings.pool(), map_index_template="{{ fund_label }}")
    def build_report(fund_dir: str, year: int) -> dict:
        from pathlib import Path

        from budget_monitor_airflow.year_end import build

        get_current_context()["fund_label"] = Path(fund_dir).name
        return build(fund_dir, year)

    @task(map_index_template="{{ fund_label }}")
    def email_report(report: dict) -> int:
        from budget_monitor_airflow.year_end import email

        get_current_context()["fund_label"] = report["fund"]
        return email(report)

    year = choose_year()
    funds = list_funds(year)
    drafts = build_report.partial(year=year).expand(fund_dir=funds)
    approved = ReportApprovalOperator.partial(
        task_id="approve_report", map_index_template="{{ task.report['fund'] }}"
    ).expand_kwargs(drafts.map(_approval))
    email_report.expand(report=approved.output)


budget_year_end_report()
