"""What the dashboard shows, read from the store: plain dicts, no Airflow, no HTML.

Every figure comes from the store through the same computation the monthly
close uses (``pipeline.compute`` -> ``execution.compute_execution``), at the
fund's latest closed month (``month_close``). The light is the close's own
``severity`` (green when none, else yellow/red): thresholds are never derived
again here. fund.yaml is read only for what the store does not hold (the pace
policy and its tolerance); the year-end outputs are files by nature and are
listed from the reports folder.

Rates, paces and gaps are the presented 2-decimal values as strings
("38.20"); money is integer fen. The web page formats them.

A fund's figures are cached per (fund, month, pace settings, store stamp):
the stamp is the month's ``closed_at`` and the fund's newest ``source_file``
id, so a re-close or any newly loaded file gives fresh figures. A page of
2,000 funds recomputes only those that changed.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select

from budget_monitor import store
from budget_monitor.config import FundConfig, FundConfigError, load_fund_config
from budget_monitor.contacts import Contacts
from budget_monitor.execution import ExecutionResult, MonthFigures, QuarterFigures, SeriesFigures

__all__ = [
    "GREEN",
    "YELLOW",
    "RED",
    "NONE",
    "FundEntry",
    "fund_configs",
    "light_of",
    "overview",
    "fund_page",
    "unit_page",
    "alerts",
    "rejections",
    "report_files",
    "report_path",
    "clear_cache",
    "contact_of",
]

GREEN, YELLOW, RED, NONE = "green", "yellow", "red", "none"
# execution.py's severity -> the dashboard's light (NONE: no budget, no rate).
_LIGHT_OF_SEVERITY = {None: GREEN, "yellow": YELLOW, "red": RED}

# Year-end outputs offered for download, in this order; anything else in the
# folder (temporary files of the atomic writer, other people's files) is not.
REPORT_KINDS: tuple[tuple[str, str], ...] = (
    ("自评报告.docx", "自评报告（Word）"),
    ("自评表.xlsx", "自评表（Excel）"),
    (".html", "自评报告（网页）"),
    (".md", "自评报告（文本）"),
    ("self_evaluation.json", "自评数据（JSON）"),
    (".png", "图表"),
)


_cache_lock = threading.Lock()


@dataclass(frozen=True)
class FundEntry:
    """A fund.yaml found under the inbox root."""

    cfg: FundConfig
    fund_dir: Path


_config_cache: dict[Path, tuple[tuple[int, int], FundConfig | None]] = {}


def _config(d: Path) -> FundConfig | None:
    """fund.yaml of ``d``, parsed again only when the file changed (a page of
    2,000 funds stats them instead of parsing them)."""
    path = d / "fund.yaml"
    try:
        st = path.stat()
    except OSError:
        return None
    stamp = (st.st_mtime_ns, st.st_size)
    with _cache_lock:
        known = _config_cache.get(path)
    if known is not None and known[0] == stamp:
        return known[1]
    try:
        cfg: FundConfig | None = load_fund_config(d)
    except FundConfigError:
        cfg = None  # the monthly DAG reports it; the page says "no config"
    with _cache_lock:
        _config_cache[path] = (stamp, cfg)
    return cfg


def fund_configs(root: Path) -> dict[str, FundEntry]:
    """Fund code -> its fund.yaml under ``root`` (broken ones are left out)."""
    from budget_monitor.pipeline import discover_funds

    out: dict[str, FundEntry] = {}
    if not Path(root).is_dir():
        return out
    for d in discover_funds(Path(root)):
        cfg = _config(d)
        if cfg is not None:
            out.setdefault(cfg.code, FundEntry(cfg, d))
    return out


def light_of(m: MonthFigures) -> str:
    """The month's light: the close's severity; NONE when there is no rate (no budget)."""
    if m.rate_2dp is None:
        return NONE
    return _LIGHT_OF_SEVERITY[m.severity]


def _dec(value: Any) -> str | None:
    return None if value is None else f"{value:.2f}"


def _month_dict(year: int, m: MonthFigures) -> dict[str, Any]:
    return {
        "month": f"{year}-{m.month:02d}",
        "rate": _dec(m.rate_2dp),
        "pace": _dec(m.pace_2dp),
        "gap": _dec(m.gap_2dp),
        "severity": m.severity,
        "light": light_of(m),
        "executed_fen": int(m.executed_fen),
        "cumulative_fen": int(m.cumulative_fen),
        "budget_fen": int(m.budget_fen),
        "to_reach_pace_fen": int(m.to_reach_pace_fen),
    }


def _quarter_dict(year: int, q: QuarterFigures, end: MonthFigures) -> dict[str, Any]:
    return {
        "quarter": q.quarter,
        "month": f"{year}-{q.month:02d}",
        "rate": _dec(q.rate_2dp),
        "pace": _dec(q.pace_2dp),
        "gap": _dec(q.gap_2dp),
        "lagging": q.lagging,
        "units_behind": list(q.units_behind),
        "light": light_of(end),  # a quarter's figures are its last month's
    }


def _series_dict(year: int, s: SeriesFigures) -> dict[str, Any]:
    return {
        "unit": s.unit,
        "initial_fen": int(s.initial_fen),
        "latest": _month_dict(year, s.latest),
        "months": [_month_dict(year, m) for m in s.months],
        "quarters": [_quarter_dict(year, q, s.month(q.month)) for q in s.quarters],
        "lagging_quarters": s.lagging_quarters,
    }


# --------------------------------------------------------------------- store reads


def _funds(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(store.fund.c.code, store.fund.c.name, store.fund.c.year, store.fund.c.department).order_by(
                store.fund.c.year.desc(), store.fund.c.code
            )
        ).mappings()
        return [dict(r) for r in rows]


def _closes(engine: Engine, codes: Iterable[str] | None = None) -> dict[str, list[tuple[str, Any]]]:
    """Closed months (YYYY-MM, closed_at) per fund, in month order."""
    stmt = select(store.month_close.c.fund_code, store.month_close.c.month, store.month_close.c.closed_at)
    if codes is not None:
        stmt = stmt.where(store.month_close.c.fund_code.in_(list(codes)))
    out: dict[str, list[tuple[str, Any]]] = {}
    with engine.connect() as conn:
        for code, month, at in conn.execute(stmt.order_by(store.month_close.c.month)):
            out.setdefault(code, []).append((month, at))
    return out


def _latest_files(engine: Engine, codes: Iterable[str] | None = None) -> dict[str, int]:
    stmt = select(store.source_file.c.fund_code, func.max(store.source_file.c.id))
    if codes is not None:
        stmt = stmt.where(store.source_file.c.fund_code.in_(list(codes)))
    with engine.connect() as conn:
        return {c: int(i) for c, i in conn.execute(stmt.group_by(store.source_file.c.fund_code))}


def _count_by_fund(engine: Engine, table: Any, *where: Any) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            c: int(n)
            for c, n in conn.execute(select(table.c.fund_code, func.count()).where(*where).group_by(table.c.fund_code))
        }


def _latest_month(year: int, closes: list[tuple[str, Any]]) -> tuple[int, Any] | None:
    """The fund year's latest closed month and when it closed."""
    mine = [(m, at) for m, at in closes if m.startswith(f"{year}-")]
    if not mine:
        return None
    month, at = mine[-1]
    return int(month[5:7]), at


# ------------------------------------------------------------------------ cache

_CACHE_SIZE = 4096
_cache: OrderedDict[tuple, ExecutionResult] = OrderedDict()


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()
        _config_cache.clear()


def _execution(engine: Engine, cfg: FundConfig, month: int, stamp: tuple) -> ExecutionResult:
    from budget_monitor.pipeline import compute

    key = (str(engine.url), cfg.code, cfg.year, month, cfg.pace.model_dump_json(), stamp)
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit
    result = compute(engine, cfg, month)
    with _cache_lock:
        _cache[key] = result
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return result


def _result_for(
    engine: Engine, cfg: FundConfig, closes: list[tuple[str, Any]], latest_file: int | None
) -> ExecutionResult | None:
    latest = _latest_month(cfg.year, closes)
    if latest is None:
        return None
    month, closed_at = latest
    return _execution(engine, cfg, month, (str(closed_at), latest_file))


# ----------------------------------------------------------------------- pages


def overview(engine: Engine, configs: Mapping[str, FundEntry]) -> list[dict[str, Any]]:
    """Every fund in the store with its latest closed month's rate, pace, gap and light.

    ``status``: "ok"; "not_closed" (no month of its year closed yet);
    "no_config" (its fund.yaml is not under the inbox root: the pace is unknown).
    """
    funds = _funds(engine)
    closes = _closes(engine)
    latest_files = _latest_files(engine)
    # Not out yet: mails pending and alerts held for the month's digest (a
    # digested alert is out with its digest, fund_code '').
    pending = _count_by_fund(engine, store.outbox, store.outbox.c.status.in_(("pending", "held")))
    rejected = _count_by_fund(engine, store.rejection)
    out = []
    for f in funds:
        row: dict[str, Any] = {
            **f,
            "month": None,
            "status": "ok",
            "rate": None,
            "pace": None,
            "gap": None,
            "light": NONE,
            "severity": None,
            "budget_fen": None,
            "cumulative_fen": None,
            "units": 0,
            "units_yellow": 0,
            "units_red": 0,
            "lagging_quarters": [],
            "alerts_unsent": pending.get(f["code"], 0),
            "rejections": rejected.get(f["code"], 0),
        }
        entry = configs.get(f["code"])
        if entry is None:
            row["status"] = "no_config"
            out.append(row)
            continue
        result = _result_for(engine, entry.cfg, closes.get(f["code"], []), latest_files.get(f["code"]))
        if result is None:
            row["status"] = "not_closed"
            out.append(row)
            continue
        m = _month_dict(result.year, result.fund.latest)
        lights = [light_of(u.latest) for u in result.units]
        row.update(
            {k: m[k] for k in ("month", "rate", "pace", "gap", "light", "severity", "budget_fen", "cumulative_fen")}
        )
        row.update(
            units=len(result.units),
            units_yellow=lights.count(YELLOW),
            units_red=lights.count(RED),
            lagging_quarters=result.fund.lagging_quarters,
        )
        out.append(row)
    return out


def _fund_row(engine: Engine, code: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = (
            conn.execute(
                select(store.fund.c.code, store.fund.c.name, store.fund.c.year, store.fund.c.department).where(
                    store.fund.c.code == code
                )
            )
            .mappings()
            .first()
        )
    return dict(row) if row else None


def alerts(engine: Engine, code: str, unit: str | None = None) -> list[dict[str, Any]]:
    """The fund's mails in the outbox (alerts, rejection notices, the year-end
    report), newest first; ``unit`` keeps only that unit's."""
    o = store.outbox.c
    stmt = select(
        o.id, o.unit, o.period, o.kind, o.subject, o.status, o.created_at, o.sent_at, o.attempts, o.digest
    ).where(o.fund_code == code)
    if unit is not None:
        stmt = stmt.where(o.unit == unit)
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(stmt.order_by(o.id)).mappings()]
    rows.reverse()  # newest first (a rejection's period is a file digest, not a date)
    _digest_sent(engine, rows)
    for r in rows:
        r["answer"] = None  # 核实反馈: not recorded yet (issue #14 item 4)
    return rows


def _digest_sent(engine: Engine, rows: list[dict[str, Any]]) -> None:
    """An alert carried by the monthly digest is as sent as its digests: ``sent_at``
    the last of them once all are sent, else None (status stays 'digested')."""
    months = {r["digest"] for r in rows if r["status"] == "digested" and r["digest"]}
    if not months:
        return
    o = store.outbox.c
    state: dict[str, list[Any]] = {}
    with engine.connect() as conn:
        for period, status, sent_at in conn.execute(
            select(o.period, o.status, o.sent_at).where(o.kind == "digest", o.fund_code == "")
        ):
            month = period.split("#", 1)[0]
            if month in months:
                state.setdefault(month, []).append(sent_at if status == "sent" else None)
    for r in rows:
        if r["status"] == "digested" and r["digest"]:
            times = state.get(r["digest"], [])
            r["sent_at"] = max(times) if times and all(times) else None


def rejections(engine: Engine, code: str) -> list[dict[str, Any]]:
    r = store.rejection.c
    with engine.connect() as conn:
        return [
            dict(x)
            for x in conn.execute(
                select(r.id, r.kind, r.name, r.reason, r.rejected_at)
                .where(r.fund_code == code)
                .order_by(r.rejected_at.desc(), r.id.desc())
            ).mappings()
        ]


def contact_of(people: Contacts | None, unit: str) -> dict[str, Any]:
    """Who a unit's alerts go to: its contacts (contacts.csv), or ``fallback``
    (none: its alerts go to the fund's finance office instead)."""
    found = people.of(unit) if people is not None else ()
    return {
        "fallback": not found,
        "contacts": [{"name": c.name, "email": c.email, "account": c.account} for c in found],
    }


def fund_page(
    engine: Engine, configs: Mapping[str, FundEntry], code: str, people: Contacts | None = None
) -> dict[str, Any] | None:
    """A fund's months, quarters, units (each with its contact, ``people`` being
    the department's contacts.csv), alerts and rejected files; None when the
    store has no such fund."""
    fund = _fund_row(engine, code)
    if fund is None:
        return None
    page: dict[str, Any] = {
        "fund": fund,
        "status": "ok",
        "month": None,
        "closed_months": [],
        "series": None,
        "units": [],
        "alerts": alerts(engine, code),
        "rejections": rejections(engine, code),
        "feedback": feedback_rows(engine, code, fund["year"]),
        "approval": approval_rows(engine, code, fund["year"]),
    }
    closes = _closes(engine, [code]).get(code, [])
    page["closed_months"] = [m for m, _ in closes]
    entry = configs.get(code)
    if entry is None:
        page["status"] = "no_config"
        return page
    page["title"] = entry.cfg.title
    result = _result_for(engine, entry.cfg, closes, _latest_files(engine, [code]).get(code))
    if result is None:
        page["status"] = "not_closed"
        return page
    page["month"] = f"{result.year}-{result.through_month:02d}"
    page["series"] = _series_dict(result.year, result.fund)
    page["units"] = [{**_series_dict(result.year, u), "contact": contact_of(people, u.unit)} for u in result.units]
    return page


def unit_page(
    engine: Engine, configs: Mapping[str, FundEntry], code: str, unit: str, people: Contacts | None = None
) -> dict[str, Any] | None:
    """One unit of a fund: its months and quarters, its contact and its alerts;
    None when the fund or the unit is unknown."""
    page = fund_page(engine, configs, code, people)
    if page is None:
        return None
    known = {u["unit"]: u for u in page["units"]}
    if page["status"] == "ok" and unit not in known:
        return None
    return {
        "fund": page["fund"],
        "status": page["status"],
        "month": page["month"],
        "unit": unit,
        "series": known.get(unit),
        "contact": contact_of(people, unit),
        "alerts": alerts(engine, code, unit),
        "feedback": [r for r in page["feedback"] if r["unit"] == unit],
    }


def feedback_rows(engine: Engine, code: str, year: int) -> list[dict[str, Any]]:
    """The fund-year's 核实反馈 requests and answers (feedback.py), by quarter and unit."""
    from budget_monitor import feedback

    return [
        {
            "unit": r.unit,
            "quarter": r.quarter,
            "status": r.status,
            "deadline": r.deadline,
            "answered_by": r.answered_by,
            "answered_at": r.answered_at,
            "cause": r.cause,
            "measures": r.measures,
        }
        for r in feedback.requests(engine, code, int(year))
    ]


def approval_rows(engine: Engine, code: str, year: int) -> list[dict[str, Any]]:
    """Every decision on the fund-year's report, latest last (approval.py)."""
    from budget_monitor import approval

    return [
        {"decision": d.decision, "by": d.decided_by, "at": d.decided_at, "comment": d.comment}
        for d in approval.history(engine, code, int(year))
    ]


# ---------------------------------------------------------------------- reports


def _report_label(name: str) -> str | None:
    for suffix, label in REPORT_KINDS:
        if name == suffix or name.endswith(suffix):
            return label
    return None


def report_files(reports_root: Path, code: str, year: int) -> dict[str, Any]:
    """The fund-year's year-end outputs in ``<reports_root>/<code>/<year>/``.

    ``draft``: the outputs are a draft (self_evaluation.json says so);
    None when there is no self_evaluation.json.
    """
    from budget_monitor.paths import UnsafePath, contained

    try:
        folder = contained(reports_root, code, str(year))
    except UnsafePath:
        return {"files": [], "draft": None}
    files = []
    if folder.is_dir():
        for path in sorted(folder.iterdir(), key=lambda p: p.name):
            label = _report_label(path.name)
            if label is None or path.name.startswith(".") or path.is_symlink() or not path.is_file():
                continue
            st = path.stat()
            files.append({"name": path.name, "label": label, "size": st.st_size})
    order = {suffix: i for i, (suffix, _) in enumerate(REPORT_KINDS)}
    files.sort(key=lambda f: (min(i for s, i in order.items() if f["name"].endswith(s)), f["name"]))
    draft = None
    evaluation = folder / "self_evaluation.json"
    if evaluation.is_file() and not evaluation.is_symlink():
        try:
            draft = bool(json.loads(evaluation.read_text(encoding="utf-8")).get("draft", False))
        except (OSError, ValueError, AttributeError):
            draft = None
    return {"files": files, "draft": draft}


def report_path(reports_root: Path, code: str, year: int, name: str) -> Path | None:
    """The file to send for a download request, or None: only a file that
    :func:`report_files` lists (no other name, no path outside the folder)."""
    from budget_monitor.paths import UnsafePath, contained

    listed = {f["name"] for f in report_files(reports_root, code, year)["files"]}
    if name not in listed:
        return None
    try:
        return contained(reports_root, code, str(year), name)
    except UnsafePath:
        return None
