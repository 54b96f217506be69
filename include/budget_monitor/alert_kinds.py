"""THE table of alert kinds: what each mail of the pipeline is, to whom, in which templates.

One row per kind (the outbox's ``kind``). What derives from it:

- the month close (alerts.py ``due``/``due_keys``/``build_alerts``): every row
  with ``monthly`` is asked, in table order, for what the close owes; its
  function is registered in alerts.py under the row's name (``@alerts.kind``);
- fund.yaml ``alerts.immediate`` (config.py): the choices are the names of the
  rows with ``digest`` and ``<name>:<severity>`` for their ``severities``;
- the mail: the subject is the macro ``subject`` of templates/alert_subjects.txt.j2,
  the body templates/<template>.txt.j2 and .html.j2; to whom by ``audience``;
- the monthly digest (templates/alert_digest.*.j2) and the dashboard: ``label``.

This module is data only (the base layer: config.py imports it); the
functions that find and describe a kind's alerts live in alerts.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "AlertKind",
    "KINDS",
    "BY_NAME",
    "MONTH_WARNING",
    "QUARTER_LAGGING",
    "YEAR_END_REPORT",
    "REJECTION",
    "DIGEST",
    "MONTHLY",
    "IMMEDIATE_CHOICES",
    "label",
]

MONTH_WARNING = "month_warning"
QUARTER_LAGGING = "quarter_lagging"
YEAR_END_REPORT = "year_end_report"
REJECTION = "rejection"
# The outbox kind of a monthly digest (one mail per recipient and month close,
# gathering the rows with ``digest``); not an alert kind of its own.
DIGEST = "digest"


@dataclass(frozen=True)
class AlertKind:
    name: str
    # Chinese, for the finance office: the digest's 类型 column, the dashboard.
    label: str
    # "unit": To the unit's contacts (contacts.csv), Cc the finance office,
    # the office alone when the unit has none; "fund": the finance office.
    audience: Literal["fund", "unit"]
    # templates/<template>.txt.j2 and .html.j2
    template: str
    # the macro of templates/alert_subjects.txt.j2
    subject: str
    # Owed by a month close (alerts.py has its function); else built elsewhere
    # (the year-end writer, the loader's rejection notice) and always mailed at once.
    monthly: bool = False
    # May wait for the monthly digest (fund.yaml alerts.mode: digest).
    digest: bool = False
    # Severities fund.yaml alerts.immediate may single out ("month_warning:red").
    severities: tuple[str, ...] = ()


KINDS: tuple[AlertKind, ...] = (
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
)

BY_NAME: dict[str, AlertKind] = {k.name: k for k in KINDS}
MONTHLY: tuple[AlertKind, ...] = tuple(k for k in KINDS if k.monthly)
IMMEDIATE_CHOICES: tuple[str, ...] = tuple(
    choice for k in KINDS if k.digest for choice in (k.name, *(f"{k.name}:{s}" for s in k.severities))
)
_LABELS = {**{k.name: k.label for k in KINDS}, DIGEST: "月度汇总"}


def label(kind: str) -> str:
    """The Chinese label of an outbox kind (the kind itself when unknown)."""
    return _LABELS.get(kind, kind)
