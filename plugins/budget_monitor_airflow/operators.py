"""Human-in-the-loop operators of the finance office's loop.

Each is Airflow's HITLOperator (standard provider: the request, the answer,
who gave it and when are Airflow's own records, shown under Required
Actions) that also writes the answer into the store the moment it arrives,
so the dashboard and the year-end see it without waiting for the other
requests of the same run. The store writes are in feedback.py (this package)
over budget_monitor.feedback / approval.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import Param

from budget_monitor_airflow import feedback


def _response(payload: Any) -> dict:
    """The HITL payload (a TypedDict-like mapping) as a plain dict."""
    return dict(payload or {})


class FeedbackRequestOperator(HITLOperator):
    """Asks one lagging unit for the cause and its measures (核实反馈). Its contact
    is mailed the request by the task before (feedback.mail_requests), not by a
    HITL notifier: a notifier runs between the request being written and the task
    waiting, and an answer given in that window is lost (the task stays waiting)."""

    FORM = {
        "cause": Param("", type="string", maxLength=2000, title="原因", description="支出进度滞后的原因"),
        "measures": Param(
            "", type="string", maxLength=2000, title="整改措施", description="已采取或拟采取的措施及预计完成时间"
        ),
    }

    def __init__(self, *, request: dict, final: bool = False, **kwargs: Any) -> None:
        kwargs.setdefault("options", [feedback.SUBMIT])
        # Defaults: at the deadline the scheduler resumes the task with them and
        # no respondent, which record() reads as "not answered" (remind once).
        kwargs.setdefault("defaults", [feedback.SUBMIT])
        kwargs.setdefault("params", self.FORM)
        super().__init__(**kwargs)
        self.request = request
        self.final = final

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict:
        payload = super().execute_complete(context, event)
        return feedback.record(self.request, _response(payload), final=self.final)


class ReportApprovalOperator(HITLOperator):
    """Asks the finance office's approver to approve or send back a year-end draft."""

    FORM = {"comment": Param("", type="string", maxLength=2000, title="意见", description="退回时必填")}

    def __init__(self, *, report: dict, **kwargs: Any) -> None:
        kwargs.setdefault("options", [feedback.APPROVE, feedback.REJECT])
        kwargs.setdefault("params", self.FORM)
        super().__init__(**kwargs)
        self.report = report

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict:
        payload = super().execute_complete(context, event)
        return feedback.decide(self.report, _response(payload))
