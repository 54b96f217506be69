"""The year-end mail: score, grade, execution and problems, the report (.docx) and 自评表 (.xlsx) attached.

Written from the model like every output: money through money_fmt, rates
and scores rounded at this edge. Rendering and the message itself are
alerts.py's (templates/alert_year_end.*.j2, the shared mail builder).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from budget_monitor.money_fmt import fen_to_wanyuan_str, fen_to_yuan_grouped, plain_number
from budget_monitor.periods import QUARTER_ZH
from budget_monitor.yearend import YearEnd

if TYPE_CHECKING:
    from budget_monitor.alerts import Alert
    from budget_monitor.config import FundConfig


def digest(model: YearEnd) -> str:
    """The digest of the report ``model`` says (of its self_evaluation.json): equal iff the same report."""
    from budget_monitor.alerts import evaluation_digest
    from budget_monitor.writers.json_writer import to_json

    return evaluation_digest(to_json(model))


def year_end_email(
    model: YearEnd,
    cfg: FundConfig,
    paths: Sequence[Path] = (),
    *,
    sender: str | None = None,
    revision: int = 0,
    report_digest: str | None = None,
) -> Alert:
    """The mail of ``model``; key (fund_code, '', 'YYYY' or 'YYYY#n', 'year_end_report').

    ``revision`` n > 0 is the n-th corrected report. ``report_digest`` (default
    :func:`digest`) travels in alerts.DIGEST_HEADER.
    """
    # alerts.py's mail builder, subject macros and names are shared with the monthly alerts.
    from budget_monitor import alerts

    sender = sender or cfg.smtp.sender
    year = model.fund.year
    attachments = tuple(Path(p) for p in paths if Path(p).suffix.lower() in alerts._ATTACH_SUFFIXES)
    ctx: dict[str, Any] = {
        "fund": cfg,
        "year": year,
        "title": cfg.title,
        "pace_policy": cfg.pace.policy,
        "chart_cid": None,
        "budget": {
            "initial": fen_to_yuan_grouped(model.initial_fen),
            "adjusted": fen_to_yuan_grouped(model.adjusted_fen),
            "executed": fen_to_yuan_grouped(model.executed_fen),
            "adjusted_wan": fen_to_wanyuan_str(model.adjusted_fen),
            # Rates and scores as the report writes them ("100%", "100分"; writers/sections.py).
            "rate": plain_number(model.execution_rate),
        },
        "total_score": plain_number(model.total_score),
        "grade": model.grade,
        "lagging_quarters": [QUARTER_ZH[q] for q in model.lagging_quarters],
        "missing": [i.name for i in model.indicators if not i.met],
        "problems": list(model.problems),
        "improvements": list(model.improvements),
        "attachments": [p.name for p in attachments],
        "revision": revision,
    }
    row = alerts.KINDS[alerts.YEAR_END_REPORT]  # its templates and subject macro (alert_kinds.py)
    key = (cfg.code, "", alerts.year_end_period(year, revision), row.name)
    subject = alerts._subject(
        row.subject, title=cfg.title, year=year, total_score=ctx["total_score"], grade=ctx["grade"], revision=revision
    )
    alert = alerts._build(cfg, key, None, subject, row.template, ctx, sender, None, attachments)
    alert.message[alerts.DIGEST_HEADER] = report_digest if report_digest is not None else digest(model)
    return alert
