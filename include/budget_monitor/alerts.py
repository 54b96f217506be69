"""The alerts of a month close (rules.md "Alerts"), rendered as e-mails.

- Month close: a ``month_warning`` for the fund and for each budget unit whose
  execution is behind pace at month end (severity yellow / red).
- Quarter close (Mar, Jun, Sep, Dec): a ``quarter_lagging`` alert for the fund
  when the quarter is lagging, naming the quarter, rate, pace, gap, the units
  behind, the money still to spend to reach pace and the forecast for the next
  quarter end.

Every alert carries its dedupe key (fund_code, unit, period, kind): unit is ''
for the whole fund, period 'YYYY-MM' (month) or 'YYYY-Qn' (quarter). The outbox
(outbox.py) sends each key once.

All Chinese wording lives in the jinja2 templates ``templates/alert_*.j2``:
``.html.j2`` are autoescaped (unit names come from data files), ``.txt.j2`` are
plain text; subjects are the macros of ``alert_subjects.txt.j2``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from email.message import EmailMessage
from email.utils import format_datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from budget_monitor.config import FundConfig
from budget_monitor.contacts import Contacts
from budget_monitor.execution import FUND, ExecutionResult, MonthFigures, SeriesFigures, round2
from budget_monitor.forecast import Forecast, forecast
from budget_monitor.money_fmt import fen_to_wanyuan_str, fen_to_yuan_grouped
from budget_monitor.pace import LABELS as PACE_LABELS
from budget_monitor.periods import QUARTER_ZH as _QUARTER_ZH
from budget_monitor.periods import TZ
from budget_monitor.yearend import YearEnd

__all__ = [
    "MONTH_WARNING",
    "QUARTER_LAGGING",
    "YEAR_END_REPORT",
    "Alert",
    "build_alerts",
    "build_year_end_email",
    "due_keys",
    "render_environment",
    "route",
]

MONTH_WARNING = "month_warning"
QUARTER_LAGGING = "quarter_lagging"
YEAR_END_REPORT = "year_end_report"
# The year-end mail carries the digest of the evaluation it reports, so a
# re-run of the year-end knows whether the report changed since it was mailed.
DIGEST_HEADER = "X-Budget-Monitor-Digest"
REJECTION = "rejection"
# A rejection mail lists this many failures; the quarantine report has them all.
_REJECTION_LINES = 20
# Year-end outputs sent as attachments (the finance office opens these two).
_ATTACH_SUFFIXES = {
    ".docx": ("application", "vnd.openxmlformats-officedocument.wordprocessingml.document"),
    ".xlsx": ("application", "vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
}

TEMPLATES = Path(__file__).parent / "templates"
_SEVERITY_ZH = {"yellow": "黄色预警", "red": "红色预警"}
_CHART_CID = "execution-chart"
_SUBJECT_SPACE = "\u3000"


@dataclass(frozen=True)
class Alert:
    fund_code: str
    unit: str
    period: str
    kind: str
    severity: str | None
    subject: str
    recipients: tuple[str, ...]
    text: str
    html: str
    message: EmailMessage = field(repr=False, compare=False)

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.fund_code, self.unit, self.period, self.kind)


@dataclass(frozen=True)
class Route:
    """Who an alert goes to: ``to`` (and ``cc``); ``fallback`` when it is about a
    unit without a contact, so the finance office got it in the unit's place."""

    to: tuple[str, ...]
    cc: tuple[str, ...] = ()
    fallback: bool = False

    @property
    def everyone(self) -> tuple[str, ...]:
        return self.to + self.cc


def route(cfg: FundConfig, unit: str, contacts: Contacts | None = None) -> Route:
    """A unit's alert goes to the unit's contacts (contacts.csv), copied to the
    fund's finance office (fund.yaml ``recipients``); a fund-level alert
    (``unit`` '') to the finance office; a unit without a contact falls back
    to the finance office."""
    office = tuple(cfg.recipients)
    if not unit:
        return Route(office)
    mine = contacts.emails(unit) if contacts is not None else ()
    if not mine:
        return Route(office, fallback=True)
    lowered = {a.lower() for a in mine}
    return Route(mine, tuple(a for a in office if a.lower() not in lowered))


@lru_cache(maxsize=1)
def render_environment() -> Environment:
    """jinja2 environment: autoescape for .html.j2, plain for .txt.j2."""
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(enabled_extensions=("html", "html.j2"), default_for_string=False, default=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.globals["pace_labels"] = PACE_LABELS  # templates/alert_policy.j2
    return env


# ----------------------------------------------------------------- presentation


def _pct(value: Decimal | None) -> str:
    return "—" if value is None else f"{round2(value):.2f}"


def _money(fen: int) -> dict[str, str]:
    return {"yuan": fen_to_yuan_grouped(fen), "wan": fen_to_wanyuan_str(fen)}


def _month_view(m: MonthFigures) -> dict[str, Any]:
    gap = m.gap_2dp
    return {
        "month": m.month,
        "rate": _pct(m.rate),
        "pace": _pct(m.pace),
        "gap": "—" if gap is None else f"{gap:.2f}",
        "behind_points": "—" if gap is None else f"{-gap:.2f}",
        "budget": _money(m.budget_fen),
        "executed": _money(m.executed_fen),
        "cumulative": _money(m.cumulative_fen),
        "to_reach": _money(m.to_reach_pace_fen),
        "severity": m.severity,
        "severity_zh": _SEVERITY_ZH.get(m.severity or "", ""),
    }


def _forecast_view(fc: Forecast) -> dict[str, Any] | None:
    if fc.quarter is None or fc.quarter_end_gap is None or fc.year_end_rate is None:
        return None
    gap = round2(fc.quarter_end_gap)
    return {
        "quarter_zh": _QUARTER_ZH[fc.quarter],
        "behind": gap < 0,
        "points": f"{abs(gap):.2f}",
        "quarter_end_rate": _pct(fc.quarter_end_rate),
        "year_end_rate": _pct(fc.year_end_rate),
        "window_months": fc.window_months,
        "monthly_spend": _money(fc.monthly_spend_fen),
    }


def _subject(macro: str, **kwargs: Any) -> str:
    module = render_environment().get_template("alert_subjects.txt.j2").module
    text = str(getattr(module, macro)(**kwargs))
    # A subject is one line whatever the data says (no header injection), and
    # its spaces are ideographic (U+3000): Python's header folder turns an
    # ASCII space between two RFC 2047 encoded words into folding whitespace,
    # which decoders drop ("药品监督管理 台山市" would arrive as "药品监督管理台山市").
    return _SUBJECT_SPACE.join(text.split())


def _message_id(key: tuple[str, str, str, str], sender: str) -> str:
    """Deterministic Message-ID: a resend of the same alert is recognisably the same mail."""
    digest = hashlib.sha256("\x1f".join(key).encode("utf-8")).hexdigest()[:24]
    domain = sender.rsplit("@", 1)[-1] if "@" in sender else "budget-monitor.local"
    # Short enough never to be folded (a folded Message-ID parses with a blank).
    return f"<bm.{digest}@{domain}>"


def _chart_png(series: SeriesFigures, year: int, month: int, title: str) -> bytes:
    from budget_monitor.charts import execution_chart  # matplotlib only when asked

    monthly = [
        {"month": f"{year}-{m.month:02d}", "cumulative_rate": float(m.rate_2dp or 0), "pace": float(m.pace_2dp)}
        for m in series.months[:month]
    ]
    quarters = [{"quarter": q.quarter, "lagging": q.lagging} for q in series.quarters if q.month <= month]
    with tempfile.TemporaryDirectory() as tmp:
        path = execution_chart(monthly, quarters, Path(tmp) / "chart.png", title=title)
        return path.read_bytes()


def _build(
    cfg: FundConfig,
    key: tuple[str, str, str, str],
    severity: str | None,
    subject: str,
    template: str,
    context: dict[str, Any],
    sender: str,
    chart: bytes | None,
    attachments: tuple[Path, ...] = (),
    to: Route | None = None,
) -> Alert:
    env = render_environment()
    to = to or route(cfg, "")
    context = {
        **context,
        "chart_cid": _CHART_CID if chart else None,
        # Whom the mail greets: the unit when it goes to the unit's contact.
        "addressee": key[1] if key[1] and to.to and not to.fallback else cfg.department,
        "fallback": to.fallback,
    }
    text = env.get_template(f"{template}.txt.j2").render(context)
    html = env.get_template(f"{template}.html.j2").render(context)

    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = sender
    msg["To"] = ", ".join(to.to)
    if to.cc:
        msg["Cc"] = ", ".join(to.cc)
    msg["Date"] = format_datetime(datetime.now(TZ))
    msg["Message-ID"] = _message_id(key, sender)
    msg["X-Budget-Monitor-Key"] = "/".join(key[:1] + key[2:])
    # base64 keeps the stored message 7-bit clean for any SMTP server.
    msg.set_content(text, charset="utf-8", cte="base64")
    msg.add_alternative(html, subtype="html", charset="utf-8", cte="base64")
    if chart:
        html_part = msg.get_payload()[1]
        html_part.add_related(chart, maintype="image", subtype="png", cid=f"<{_CHART_CID}>", filename="execution.png")
    for path in attachments:
        maintype, subtype = _ATTACH_SUFFIXES[path.suffix.lower()]
        msg.add_attachment(path.read_bytes(), maintype=maintype, subtype=subtype, filename=path.name)
    return Alert(*key, severity=severity, subject=subject, recipients=to.everyone, text=text, html=html, message=msg)


def due_keys(cfg: FundConfig, result: ExecutionResult, month: int) -> list[tuple[str, str, str, str]]:
    """Keys (fund, unit, period, kind) of the alerts the ``month`` close owes, in
    :func:`build_alerts`' order: fund first, then units by name, then the
    quarter. Nothing is rendered: a rerun counts them for free."""
    if not 1 <= month <= result.through_month:
        raise ValueError(f"执行结果只计算到 {result.through_month} 月，不能生成 {month} 月的预警")
    keys = [
        (cfg.code, s.unit, f"{result.year}-{month:02d}", MONTH_WARNING)
        for s in (result.fund, *result.units)
        if s.month(month).severity is not None
    ]
    if month % 3 == 0 and result.fund.quarter(month // 3).lagging:
        keys.append((cfg.code, "", f"{result.year}-Q{month // 3}", QUARTER_LAGGING))
    return keys


def build_alerts(
    cfg: FundConfig,
    result: ExecutionResult,
    month: int,
    *,
    sender: str | None = None,
    chart: bool = False,
    skip: Collection[tuple[str, str, str, str]] = (),
    contacts: Contacts | None = None,
) -> list[Alert]:
    """The alerts of the ``month`` close (those of :func:`due_keys`).

    ``chart`` embeds the fund's cumulative chart in the fund's warning and the
    quarter alert (rendered once; unit warnings carry their figures as a
    table: a chart per unit was 93 % of a close's time, bench/RESULTS.md R4).
    Keys in ``skip`` (already in the outbox) are not rendered at all, so a
    rerun of a month costs nothing here. ``contacts`` (contacts.csv) routes
    each unit's warning to the unit (:func:`route`).
    """
    sender = sender or cfg.smtp.sender
    period_zh = f"{result.year}年{month}月"
    base = {
        "fund": cfg,
        "year": result.year,
        "month": month,
        "period_zh": period_zh,
        "title": cfg.title,
        "pace_policy": result.pace.policy,
    }
    alerts: list[Alert] = []
    fund_png: list[bytes] = []  # rendered on first use, shared by the fund's two alerts

    def fund_chart() -> bytes | None:
        if not chart:
            return None
        if not fund_png:
            fund_png.append(_chart_png(result.fund, result.year, month, f"{cfg.title} 累计执行率与序时进度"))
        return fund_png[0]

    for key in due_keys(cfg, result, month):
        if key in skip:
            continue
        if key[3] == MONTH_WARNING:
            series = result.fund if key[1] == FUND else result.unit(key[1])
            m = series.month(month)
            fc = forecast(series, result.year, result.pace, month)
            ctx = {**base, "unit": series.unit, "m": _month_view(m), "forecast": _forecast_view(fc)}
            subject = _subject(
                "month", title=cfg.title, unit=series.unit, period_zh=period_zh, severity_zh=_SEVERITY_ZH[m.severity]
            )
            png = fund_chart() if series is result.fund else None
            to = route(cfg, key[1], contacts)
            alerts.append(_build(cfg, key, m.severity, subject, "alert_month", ctx, sender, png, to=to))
            continue
        quarter = result.fund.quarter(month // 3)
        fc = forecast(result.fund, result.year, result.pace, month)
        behind = [{"unit": name, "m": _month_view(result.unit(name).month(month))} for name in quarter.units_behind]
        ctx = {
            **base,
            "unit": "",
            "quarter": quarter.quarter,
            "quarter_zh": _QUARTER_ZH[quarter.quarter],
            "m": _month_view(result.fund.month(month)),
            "units_behind": behind,
            "forecast": _forecast_view(fc),
        }
        subject = _subject("quarter", title=cfg.title, year=result.year, quarter_zh=_QUARTER_ZH[quarter.quarter])
        alerts.append(_build(cfg, key, None, subject, "alert_quarter", ctx, sender, fund_chart()))
    return alerts


_NOT_DIGESTED = frozenset({"self_evaluation_form", "provenance"})


def evaluation_digest(evaluation: Mapping[str, Any] | YearEnd) -> str:
    """sha256 of the self_evaluation.json dict (canonical JSON), first 32 hex digits: equal iff
    the report says the same. (Short enough that its mail header is never folded.) A
    YearEnd model is digested as its self_evaluation.json (writers/json_writer.py)."""
    import json

    if isinstance(evaluation, YearEnd):
        from budget_monitor.writers.json_writer import to_json

        evaluation = to_json(evaluation)
    # The data contract's keys only: the provenance (generation and load times) would make
    # every re-run a "corrected" report, and digests stay those of reports mailed before it existed.
    evaluation = {k: v for k, v in evaluation.items() if k not in _NOT_DIGESTED}
    text = json.dumps(evaluation, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def year_end_period(year: int, revision: int) -> str:
    """The outbox period of the year-end mail: 'YYYY', then 'YYYY#n' for the n-th corrected report."""
    return str(year) if revision == 0 else f"{year}#{revision}"


def is_year_end_period(period: str, year: int) -> bool:
    """Whether ``period`` is one of :func:`year_end_period`'s for ``year``."""
    return period == str(year) or period.startswith(f"{year}#")


def build_year_end_email(
    cfg: FundConfig,
    evaluation: YearEnd | Mapping[str, Any],
    paths: list[Path] | tuple[Path, ...] = (),
    *,
    sender: str | None = None,
    revision: int = 0,
) -> Alert:
    """The year-end mail: score, grade, execution, problems; report (.docx) and 自评表 (.xlsx) attached.

    Composed by the mail writer (writers/mail_writer.py) from the year-end
    model; a self_evaluation.json dict is read into one first (and its own
    digest kept). Key (fund_code, '', 'YYYY', 'year_end_report'), so the
    report mail is sent once. ``revision`` n > 0 is the n-th corrected report
    (data corrected after the first mail): key period 'YYYY#n', subject and
    text say it replaces the earlier one. The evaluation's digest travels in
    :data:`DIGEST_HEADER`.
    """
    from budget_monitor.writers import year_end_mail
    from budget_monitor.yearend import from_json

    if isinstance(evaluation, YearEnd):
        model, digest = evaluation, None
    else:
        model, digest = from_json(evaluation), evaluation_digest(evaluation)
    return year_end_mail(model, cfg, paths, sender=sender, revision=revision, report_digest=digest)


def build_rejection_email(cfg: FundConfig, report: Any, quarantined: Path, *, sender: str | None = None) -> Alert:
    """The finance office's notice that a file was rejected whole (``report`` is a ValidationReport).

    Keyed by the file's sha256, so the same bytes rejected again are not
    announced twice, and queued in the outbox like every alert: a failed send
    is retried by the next flush.
    """
    sender = sender or cfg.smtp.sender
    failures = [f.message for f in report.failures[:_REJECTION_LINES]]
    ctx = {
        "fund": cfg,
        "pace_policy": cfg.pace.policy,
        "file": report.file,
        "reason": report.first_reason(),
        "failures": failures,
        "total": sum(report.counts.values()) or len(report.failures),
        "quarantined": quarantined.name,
    }
    key = (cfg.code, "", (report.sha256 or "unknown")[:16], REJECTION)
    subject = _subject("rejection", title=cfg.title, file=report.file)
    return _build(cfg, key, "red", subject, "alert_rejection", ctx, sender, None)
