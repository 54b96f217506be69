"""THE table of alert kinds: what each mail of the pipeline is, to whom, in which templates.

One row of ``KINDS`` per kind (the outbox's ``kind``). Everything else reads
the table, at the time it is used (a row added later shows at once):

- the month close (alerts.py ``due`` / ``due_keys`` / ``build_alerts``): every
  row with ``monthly`` is asked, in table order, what the close owes, through
  the function alerts.py registers under the row's name (``@alerts.kind``);
- who gets it: ``audience`` (alerts.py ``route_of``);
- the mail: subject = the macro ``subject`` of templates/alert_subjects.txt.j2,
  body = templates/<template>.txt.j2 and .html.j2;
- fund.yaml ``alerts.immediate`` (config.py): the names of the rows with
  ``digest`` and ``<name>:<severity>`` for their ``severities``;
- the monthly digest (templates/alert_digest.*.j2) and the dashboard: ``label``.

Data only: this sits in the base layer, so config.py can read it; the
functions finding and describing a kind's alerts live in alerts.py. How to
add a kind: docs/architecture.md, "How to add an alert kind".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "AlertKind",
    "KINDS",
    "MONTH_WARNING",
    "QUARTER_LAGGING",
    "YEAR_END_REPORT",
    "REJECTION",
    "FEEDBACK_REQUEST",
    "FEEDBACK_REMINDER",
    "DIGEST",
    "monthly",
    "immediate_choices",
    "label",
]

MONTH_WARNING = "month_warning"
QUARTER_LAGGING = "quarter_lagging"
YEAR_END_REPORT = "year_end_report"
REJECTION = "rejection"
# 核实反馈: a lagging unit is told a request waits for its answer (Required
# Actions), and reminded once after the deadline. Built by the feedback DAG's
# HITL tasks (budget_monitor_airflow/feedback.py), one per (fund, unit, quarter).
FEEDBACK_REQUEST = "feedback_request"
FEEDBACK_REMINDER = "feedback_reminder"
# The outbox kind of a monthly digest (one mail per recipient and month close,
# carrying the alerts of the rows with ``digest``); not an alert kind of its own.
DIGEST = "digest"
_DIGEST_LABEL = "月度汇总"


@dataclass(frozen=True)
class AlertKind:
    name: str
    # Chinese, for the finance office: the digest's 类型 column, the dashboard.
    label: str
    # "unit": To the unit's contacts (contacts.csv), Cc the finance office (the
    # office alone when the unit has none); "fund": the finance office.
    audience: Literal["fund", "unit"]
    # templates/<template>.txt.j2 and .html.j2
    template: str
    # the macro of templates/alert_subjects.txt.j2
    subject: str
    # Owed by a month close: alerts.py has its function (@alerts.kind). Else
    # built elsewhere (the year-end mail writer, the loader's rejection notice).
    monthly: bool = False
    # May wait for the monthly digest (fund.yaml alerts.mode: digest); a kind
    # without it is always mailed at once.
    digest: bool = False
    # Severities fund.yaml alerts.immediate may single out ("month_warning:red").
    severities: tuple[str, ...] = ()


KINDS: dict[str, AlertKind] = {
    row.name: row
    for row in (
        AlertKind(
            MONTH_WARNING,
            "月度预警",
            "unit",
            "alert_month",
            "month",
            monthly=True,
            digest=True,
            severities=("yellow", "red"),
        ),
        AlertKind(QUARTER_LAGGING, "季度滞后", "fund", "alert_quarter", "quarter", monthly=True, digest=True),
        AlertKind(YEAR_END_REPORT, "年度自评报告", "fund", "alert_year_end", "year_end"),
        AlertKind(REJECTION, "数据退回", "fund", "alert_rejection", "rejection"),
        AlertKind(FEEDBACK_REQUEST, "核实反馈", "unit", "alert_feedback", "feedback"),
        AlertKind(FEEDBACK_REMINDER, "核实反馈催办", "unit", "alert_feedback", "feedback_reminder"),
    )
}


def monthly() -> list[AlertKind]:
    """The kinds a month close owes, in table order."""
    return [k for k in KINDS.values() if k.monthly]


def immediate_choices() -> list[str]:
    """What fund.yaml ``alerts.immediate`` may list: each digest kind, and kind:severity."""
    return [c for k in KINDS.values() if k.digest for c in (k.name, *(f"{k.name}:{s}" for s in k.severities))]


def label(kind: str) -> str:
    """The Chinese label of an outbox kind (the kind itself when unknown)."""
    if kind == DIGEST:
        return _DIGEST_LABEL
    row = KINDS.get(kind)
    return row.label if row is not None else kind
