"""The alerts of a month close (rules.md "Alerts"), rendered as e-mails.

The kinds are the table alert_kinds.KINDS; each month-close kind has a
function here, registered with ``@kind("<name>")``, that says what a close
owes (:class:`Due`: key, severity, subject arguments, digest row, mail context):

- ``month_warning``: the fund and each budget unit whose execution is behind
  pace at month end (severity yellow / red);
- ``quarter_lagging`` (Mar, Jun, Sep, Dec): the fund when the quarter lags,
  naming the quarter, rate, pace, gap, the units behind, the money still to
  spend to reach pace and the forecast for the next quarter end.

Every alert carries its dedupe key (fund_code, unit, period, kind): unit is ''
for the whole fund, period 'YYYY-MM' (month) or 'YYYY-Qn' (quarter). The outbox
(outbox.py) stores each key once: as a mail of its own (fund.yaml
``alerts.mode: each``, or an ``alerts.immediate`` kind; :func:`build_alerts`)
or held for the recipients' monthly digest (:func:`hold`, :func:`build_digest`).
Who gets it: :func:`route` (the unit's contacts in contacts.csv, Cc the
finance office; the finance office for the fund and for a unit without one).

All Chinese wording lives in the jinja2 templates ``templates/alert_*.j2``:
``.html.j2`` are autoescaped (unit names come from data files), ``.txt.j2`` are
plain text; subjects are the macros of ``alert_subjects.txt.j2``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
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

from budget_monitor import alert_kinds
from budget_monitor.alert_kinds import (
    DIGEST,
    FEEDBACK_REMINDER,
    FEEDBACK_REQUEST,
    KINDS,
    MONTH_WARNING,
    QUARTER_LAGGING,
    REJECTION,
    YEAR_END_REPORT,
    AlertKind,
)
from budget_monitor.config import FundConfig
from budget_monitor.contacts import Contacts
from budget_monitor.execution import ExecutionResult, MonthFigures, SeriesFigures, round2
from budget_monitor.forecast import Forecast, History, forecast
from budget_monitor.money_fmt import fen_to_wanyuan_str, fen_to_yuan_grouped
from budget_monitor.pace import LABELS as PACE_LABELS
from budget_monitor.periods import QUARTER_ZH as _QUARTER_ZH
from budget_monitor.periods import TZ
from budget_monitor.yearend import YearEnd

__all__ = [
    "MONTH_WARNING",
    "QUARTER_LAGGING",
    "YEAR_END_REPORT",
    "REJECTION",
    "Alert",
    "Close",
    "Due",
    "Held",
    "Route",
    "build_alerts",
    "build_digest",
    "build_feedback_email",
    "build_year_end_email",
    "due",
    "due_keys",
    "hold",
    "kind",
    "render_environment",
    "route",
]

# The year-end mail carries the digest of the evaluation it reports, so a
# re-run of the year-end knows whether the report changed since it was mailed.
DIGEST_HEADER = "X-Budget-Monitor-Digest"
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
        # How it was made (templates/alert_forecast.j2): method, earlier years, range.
        "method": fc.method,
        "years": "、".join(str(y) for y in fc.years),
        "profiles": fc.profiles,
        "year_end_low": _pct(fc.year_end_low),
        "year_end_high": _pct(fc.year_end_high),
        "quarter_end_low": _pct(fc.quarter_end_low),
        "quarter_end_high": _pct(fc.quarter_end_high),
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


def _mail(
    key: tuple[str, str, str, str],
    subject: str,
    sender: str,
    to: Route,
    text: str,
    html: str,
    chart: bytes | None = None,
    attachments: tuple[Path, ...] = (),
) -> EmailMessage:
    """The MIME message of one mail: plain text and HTML parts (base64), chart, attachments."""
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
    return msg


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
    msg = _mail(key, subject, sender, to, text, html, chart, attachments)
    return Alert(*key, severity=severity, subject=subject, recipients=to.everyone, text=text, html=html, message=msg)


# ------------------------------------------------------------ the kinds of a month close


@dataclass(frozen=True)
class Close:
    """What a kind's function reads: the fund and its execution through ``month``."""

    cfg: FundConfig
    result: ExecutionResult
    month: int
    # Earlier years' spending profiles for the forecast (pipeline.forecast_history),
    # or a function reading them: called only when a mail with a forecast is rendered
    # (a digest close renders none).
    history: History | Callable[[], History] | None = None

    def forecast_history(self) -> History | None:
        return self.history() if callable(self.history) else self.history

    @property
    def period_zh(self) -> str:
        return f"{self.result.year}年{self.month}月"

    def detail(self, kind: str, unit: str, period: str, period_zh: str, m: dict[str, Any], note: str = "") -> dict:
        """The digest's row of an alert: presented text only (stored as JSON in the outbox)."""
        return {
            "fund_code": self.cfg.code,
            "fund_title": self.cfg.title,
            "fund_name": self.cfg.name,
            "department": self.cfg.department,
            "pace_policy": self.result.pace.policy,
            "kind": kind,
            "unit": unit,
            "period": period,
            "period_zh": period_zh,
            "severity": m["severity"],
            "severity_zh": m["severity_zh"],
            "rate": m["rate"],
            "pace": m["pace"],
            "gap": m["gap"],
            "behind_points": m["behind_points"],
            "to_reach": m["to_reach"],
            "note": note,
        }


@dataclass(frozen=True)
class Due:
    """One alert a month close owes, not rendered yet.

    ``subject``: the arguments of the kind's subject macro; ``detail``: its
    row in the monthly digest (:meth:`Close.detail`); ``context``: the
    template context of its own mail (called only when it is mailed on its
    own); ``chart``: the mail embeds the fund's chart when charts are asked for.
    """

    key: tuple[str, str, str, str]
    severity: str | None
    subject: dict[str, Any]
    detail: dict[str, Any]
    context: Callable[[], dict[str, Any]]
    chart: bool = False

    @property
    def kind(self) -> AlertKind:
        return KINDS[self.key[3]]


# name -> the function finding a kind's alerts in a close (the rows of alert_kinds.KINDS with ``monthly``).
_KIND_FUNCTIONS: dict[str, Callable[[Close], Iterable[Due]]] = {}


def kind(name: str) -> Callable[[Callable[[Close], Iterable[Due]]], Callable[[Close], Iterable[Due]]]:
    """Register the function of the month-close kind ``name`` (its row in alert_kinds.KINDS)."""

    def register(fn: Callable[[Close], Iterable[Due]]) -> Callable[[Close], Iterable[Due]]:
        row = KINDS.get(name)
        if row is None or not row.monthly:
            raise ValueError(f"{name}: not a month-close kind of alert_kinds.KINDS")
        _KIND_FUNCTIONS[name] = fn
        return fn

    return register


@kind(MONTH_WARNING)
def month_warnings(close: Close) -> Iterator[Due]:
    """The fund, then each unit by name, behind pace at the month end (yellow / red)."""
    cfg, result, month = close.cfg, close.result, close.month
    period = f"{result.year}-{month:02d}"
    for series in (result.fund, *result.units):
        m = series.month(month)
        if m.severity is None:
            continue
        view = _month_view(m)

        def context(series: SeriesFigures = series, view: dict[str, Any] = view) -> dict[str, Any]:
            fc = forecast(series, result.year, result.pace, month, history=close.forecast_history())
            return {"unit": series.unit, "m": view, "forecast": _forecast_view(fc)}

        yield Due(
            key=(cfg.code, series.unit, period, MONTH_WARNING),
            severity=m.severity,
            subject={
                "title": cfg.title,
                "unit": series.unit,
                "period_zh": close.period_zh,
                "severity_zh": _SEVERITY_ZH[m.severity],
            },
            detail=close.detail(MONTH_WARNING, series.unit, period, close.period_zh, view),
            context=context,
            # The fund's own warning only: a chart per unit dominated a close's time (bench/RESULTS.md R4).
            chart=series is result.fund,
        )


@kind(QUARTER_LAGGING)
def quarter_lagging(close: Close) -> Iterator[Due]:
    """At a quarter's last month, the fund when the quarter lags: rate, pace, gap, units behind."""
    cfg, result, month = close.cfg, close.result, close.month
    if month % 3 or not result.fund.quarter(month // 3).lagging:
        return
    quarter = result.fund.quarter(month // 3)
    view = _month_view(result.fund.month(month))
    quarter_zh = _QUARTER_ZH[quarter.quarter]

    def context() -> dict[str, Any]:
        fc = forecast(result.fund, result.year, result.pace, month, history=close.forecast_history())
        behind = [{"unit": name, "m": _month_view(result.unit(name).month(month))} for name in quarter.units_behind]
        return {
            "unit": "",
            "quarter": quarter.quarter,
            "quarter_zh": quarter_zh,
            "m": view,
            "units_behind": behind,
            "forecast": _forecast_view(fc),
        }

    period = f"{result.year}-Q{quarter.quarter}"
    note = f"落后的预算单位：{'、'.join(quarter.units_behind)}" if quarter.units_behind else ""
    detail = close.detail(
        QUARTER_LAGGING,
        "",
        period,
        f"{result.year}年{quarter_zh}",
        # A quarter lags or not: the month's yellow/red is the month warning's.
        {**view, "severity": None, "severity_zh": ""},
        note,
    )
    # The digest carries the quarter alert's forecast too (its method and range):
    # digest is the default mode, and a lagging quarter is when the office needs it.
    # Earlier years are read here only for a lagging quarter (at most 4 closes a year).
    detail["forecast"] = _forecast_view(
        forecast(result.fund, result.year, result.pace, month, history=close.forecast_history())
    )
    yield Due(
        key=(cfg.code, "", period, QUARTER_LAGGING),
        severity=None,
        subject={"title": cfg.title, "year": result.year, "quarter_zh": quarter_zh},
        detail=detail,
        context=context,
        chart=True,
    )


def due(
    cfg: FundConfig,
    result: ExecutionResult,
    month: int,
    *,
    history: History | Callable[[], History] | None = None,
) -> list[Due]:
    """The alerts the ``month`` close owes, kind by kind in alert_kinds.KINDS order
    (the month warnings, fund first then units by name; then the quarter). Nothing is rendered.
    ``history``: the earlier years the forecasts learn from, or a function reading them
    (none: recent months)."""
    if not 1 <= month <= result.through_month:
        raise ValueError(f"执行结果只计算到 {result.through_month} 月，不能生成 {month} 月的预警")
    close = Close(cfg, result, month, history)
    return [d for row in alert_kinds.monthly() for d in _function_of(row)(close)]


def _function_of(row: AlertKind) -> Callable[[Close], Iterable[Due]]:
    fn = _KIND_FUNCTIONS.get(row.name)
    if fn is None:  # a row of alert_kinds.KINDS without its function
        raise RuntimeError(f"alert kind {row.name!r} has no @kind function in alerts.py")
    return fn


# Every month-close row of the table has its function: checked at import, not at a close.
for _row in alert_kinds.monthly():
    _function_of(_row)


def due_keys(cfg: FundConfig, result: ExecutionResult, month: int) -> list[tuple[str, str, str, str]]:
    """Keys (fund, unit, period, kind) of the alerts the ``month`` close owes, in
    :func:`build_alerts`' order. Nothing is rendered: a rerun counts them for free."""
    return [d.key for d in due(cfg, result, month)]


def route_of(cfg: FundConfig, d: Due, contacts: Contacts | None) -> Route:
    """Who gets the alert ``d``: by its kind's audience (alert_kinds.py)."""
    return route(cfg, d.key[1] if d.kind.audience == "unit" else "", contacts)


def build_alerts(
    cfg: FundConfig,
    result: ExecutionResult,
    month: int,
    *,
    sender: str | None = None,
    chart: bool = False,
    skip: Collection[tuple[str, str, str, str]] = (),
    contacts: Contacts | None = None,
    dues: Iterable[Due] | None = None,
) -> list[Alert]:
    """The alerts of the ``month`` close (those of :func:`due`, or ``dues``) as mails of their own.

    ``chart`` embeds the fund's cumulative chart in the fund's warning and the
    quarter alert (rendered once; unit warnings carry their figures as a
    table). Keys in ``skip`` (already in the outbox) are not rendered at all,
    so a rerun of a month costs nothing here. ``contacts`` (contacts.csv)
    routes each unit's warning to the unit (:func:`route`).
    """
    sender = sender or cfg.smtp.sender
    base = {
        "fund": cfg,
        "year": result.year,
        "month": month,
        "period_zh": f"{result.year}年{month}月",
        "title": cfg.title,
        "pace_policy": result.pace.policy,
    }
    fund_png: list[bytes] = []  # rendered on first use, shared by the fund's alerts

    def fund_chart() -> bytes | None:
        if not fund_png:
            fund_png.append(_chart_png(result.fund, result.year, month, f"{cfg.title} 累计执行率与序时进度"))
        return fund_png[0]

    alerts: list[Alert] = []
    for d in due(cfg, result, month) if dues is None else dues:
        if d.key in skip:
            continue
        row = d.kind
        png = fund_chart() if chart and d.chart else None
        subject = _subject(row.subject, **d.subject)
        ctx = {**base, **d.context()}
        alerts.append(
            _build(cfg, d.key, d.severity, subject, row.template, ctx, sender, png, to=route_of(cfg, d, contacts))
        )
    return alerts


@dataclass(frozen=True)
class Held:
    """An alert waiting for its recipients' monthly digest (outbox status 'held')."""

    key: tuple[str, str, str, str]
    severity: str | None
    subject: str
    recipients: tuple[str, ...]
    detail: dict[str, Any]


def hold(cfg: FundConfig, d: Due, contacts: Contacts | None = None, *, sender: str | None = None) -> Held:
    """``d`` as an outbox row for the digest: its subject, everyone it concerns, its figures."""
    to = route_of(cfg, d, contacts)
    detail = {**d.detail, "to": list(to.to), "fallback": to.fallback, "sender": sender or cfg.smtp.sender}
    return Held(d.key, d.severity, _subject(d.kind.subject, **d.subject), to.everyone, detail)


# ------------------------------------------------------------------ the monthly digest

DIGEST_FUND = ""  # the outbox fund_code of a digest: it spans the department's funds
FUNDS_HEADER = "X-Budget-Monitor-Funds"


def digest_period(month: str, supplement: int) -> str:
    """The outbox period of a recipient's digest of ``month``: 'YYYY-MM', then
    'YYYY-MM#n' for the n-th supplement (alerts held after the digest was made)."""
    return month if supplement == 0 else f"{month}#{supplement}"


def build_digest(recipient: str, month: str, items: list[dict[str, Any]], *, supplement: int = 0) -> Alert:
    """One recipient's digest of the ``month`` ('YYYY-MM') close: every held alert
    concerning them (``items``: their outbox ``detail``), grouped by fund.

    Key ('', recipient, 'YYYY-MM' or 'YYYY-MM#n', 'digest'): the outbox sends
    it once per (recipient, period). The recipient's own units (those whose
    alerts name them in ``to``) are greeted; else the finance office's department.
    """
    year, mon = (int(p) for p in month.split("-"))
    funds: dict[str, dict[str, Any]] = {}
    for item in items:
        f = funds.setdefault(
            item["fund_code"],
            {
                "code": item["fund_code"],
                "title": item["fund_title"],
                "name": item["fund_name"],
                "pace_policy": item["pace_policy"],
                "items": [],
            },
        )
        f["items"].append({**item, "label": alert_kinds.label(item["kind"])})
    # Greeted: the recipient's own units when every alert is about one of them
    # (a unit contact's digest), else the finance office's department.
    own = [i["unit"] for i in items if i["unit"] and not i["fallback"] and recipient in i["to"]]
    departments = list(dict.fromkeys(i["department"] for i in items))
    ctx = {
        "addressee": "、".join(dict.fromkeys(own)) if len(own) == len(items) else "、".join(departments),
        "period_zh": f"{year}年{mon}月",
        "funds": list(funds.values()),
        "count": len(items),
        "red": sum(1 for i in items if i["severity"] == "red"),
        "supplement": supplement,
        "policies": list(dict.fromkeys(i["pace_policy"] for i in items)),
    }
    env = render_environment()
    text = env.get_template("alert_digest.txt.j2").render(ctx)
    html = env.get_template("alert_digest.html.j2").render(ctx)
    subject = _subject("digest", period_zh=ctx["period_zh"], count=len(items), red=ctx["red"], supplement=supplement)
    key = (DIGEST_FUND, recipient, digest_period(month, supplement), DIGEST)
    sender = items[0]["sender"]
    msg = _mail(key, subject, sender, Route((recipient,)), text, html)
    # The fund codes it covers (ASCII): mail rules and tests can tell digests apart.
    msg[FUNDS_HEADER] = ", ".join(funds)
    return Alert(*key, severity=None, subject=subject, recipients=(recipient,), text=text, html=html, message=msg)


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
    from budget_monitor.validation import docs

    sender = sender or cfg.smtp.sender
    failures = [f.message for f in report.failures[:_REJECTION_LINES]]
    # The quarantine is <fund_dir>/quarantine; the file's Data Docs page is named as it is quarantined.
    docs_url = docs.page_url(quarantined.parent.parent.name, report.kind, quarantined.name)
    ctx = {
        "fund": cfg,
        "pace_policy": cfg.pace.policy,
        "file": report.file,
        "reason": report.first_reason(),
        "failures": failures,
        "total": sum(report.counts.values()) or len(report.failures),
        "quarantined": quarantined.name,
        "docs_url": docs_url,
    }
    row = KINDS[REJECTION]
    key = (cfg.code, "", (report.sha256 or "unknown")[:16], row.name)
    subject = _subject(row.subject, title=cfg.title, file=report.file)
    return _build(cfg, key, "red", subject, row.template, ctx, sender, None)


def _percent(value: str | None) -> str:
    return "—" if value is None else f"{value}%"


def build_feedback_email(
    cfg: FundConfig,
    unit: str,
    year: int,
    quarter: int,
    figures: Mapping[str, str | None],
    deadline: datetime,
    *,
    reminder: bool = False,
    url: str | None = None,
    contacts: Contacts | None = None,
    sender: str | None = None,
) -> Alert:
    """The mail telling a lagging unit that a 核实反馈 request waits for its answer
    (``reminder``: the one reminder after the deadline, '【催办】').

    ``figures``: the unit's quarter (feedback.quarter_figures: cumulative_rate,
    pace, gap_points as 2-decimal text); ``deadline``: the answer's deadline
    (Asia/Shanghai; naive is taken as the store's local time); ``url``: the
    Required Actions page (None: the mail says where to find it). To the unit's
    contacts only: no Cc, and no mail for a unit without a contact (no
    recipients). The finance office sees every request on the dashboard and
    under Required Actions, answers there for a unit without a contact (its
    digest marks the unit 无联系人), and its mail stays one digest a month
    (issue 14: at most 13 mails a year). Key (fund_code, unit, 'YYYY-Qn',
    kind): the outbox sends each once.
    """
    row = KINDS[FEEDBACK_REMINDER if reminder else FEEDBACK_REQUEST]
    quarter_zh = _QUARTER_ZH[quarter]
    when = deadline if deadline.tzinfo is None else deadline.astimezone(TZ)
    gap = figures.get("gap_points")
    ctx = {
        "fund": cfg,
        "pace_policy": cfg.pace.policy,
        "unit": unit,
        "year": year,
        "quarter_zh": quarter_zh,
        "rate": _percent(figures.get("cumulative_rate")),
        "pace": _percent(figures.get("pace")),
        "gap": "—" if gap is None else f"{gap}个百分点",
        "deadline": f"{when:%Y-%m-%d %H:%M}",
        "reminder": reminder,
        "url": url,
    }
    key = (cfg.code, unit, f"{year}-Q{quarter}", row.name)
    subject = _subject(row.subject, unit=unit, year=year, quarter_zh=quarter_zh)
    return _build(
        cfg, key, None, subject, row.template, ctx, sender or cfg.smtp.sender, None, to=_unit_only(unit, contacts)
    )


def _unit_only(unit: str, contacts: Contacts | None) -> Route:
    """The unit's own contacts, nobody else (empty when it has none)."""
    return Route(contacts.emails(unit) if contacts is not None else ())
