"""核实反馈: a unit that lags at a quarter end is asked for the cause and its measures.

The loop (预警 → 核实 → 反馈 → 整改): at the close of March, June, September
and December every unit whose cumulative execution lags the pace at that
quarter end gets one request with a deadline. Its contact answers (in Airflow
the request is a Human-in-the-loop task, so who answered and when are
Airflow's records too); an unanswered request is reminded once after the
deadline, then closed as unanswered. The year-end 存在问题 and 改进意见 quote
the answers; fund.yaml ``lag_causes`` is only the fallback for a quarter
nobody answered, and the report says which is which.

Requests and answers live in the store (table ``feedback``), keyed by
(fund, unit, year, quarter): asking again for the same quarter, or
recording the same answer twice, changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from budget_monitor import store
from budget_monitor.money_fmt import round2

OPEN, REMINDED, ANSWERED, UNANSWERED = "open", "reminded", "answered", "unanswered"
# Longest cause or measures text kept; a form field is not a report chapter.
MAX_TEXT = 2000


@dataclass(frozen=True)
class Request:
    """One (unit, quarter) asked for its cause and measures."""

    fund_code: str
    unit: str
    year: int
    quarter: int
    status: str
    requested_at: datetime
    deadline: datetime
    reminded_at: datetime | None = None
    answered_at: datetime | None = None
    answered_by: str | None = None
    cause: str | None = None
    measures: str | None = None
    channel: str | None = None

    @property
    def key(self) -> str:
        """Stable text key of the request (Airflow map index label, outbox period)."""
        return f"{self.year}Q{self.quarter}:{self.unit}"


def due(result: Any, month: int) -> list[tuple[str, int]]:
    """(unit, quarter) pairs to ask at the close of ``month``: the units whose
    own cumulative execution lags the pace at that quarter end (rules.md: the
    quarter test of each unit). Not a quarter-end month: nothing."""
    if month % 3:
        return []
    quarter = month // 3
    out = []
    for series in result.units:
        figures = next((q for q in series.quarters if q.quarter == quarter), None)
        if figures is not None and figures.lagging:
            out.append((series.unit, quarter))
    return out


def _row(r: Mapping[str, Any]) -> Request:
    return Request(**{k: r[k] for k in Request.__dataclass_fields__})


def ask(
    engine: Engine,
    fund_code: str,
    year: int,
    pairs: Iterable[tuple[str, int]],
    *,
    now: datetime | None = None,
    deadline: timedelta = timedelta(days=10),
) -> list[Request]:
    """Open a request for each (unit, quarter) not asked before; return every
    request of these pairs that still waits for an answer (new or earlier)."""
    now = now or store.now_local()
    pairs = list(dict.fromkeys(pairs))
    with engine.begin() as conn:
        for unit, quarter in pairs:
            try:
                with conn.begin_nested():
                    conn.execute(
                        insert(store.feedback).values(
                            fund_code=fund_code,
                            unit=unit,
                            year=year,
                            quarter=quarter,
                            status=OPEN,
                            requested_at=now,
                            deadline=now + deadline,
                        )
                    )
            except IntegrityError:
                pass  # asked before (a rerun of the close): the first request stands
    wanted = set(pairs)
    return [
        r for r in requests(engine, fund_code, year) if (r.unit, r.quarter) in wanted and r.status in (OPEN, REMINDED)
    ]


def requests(engine: Engine, fund_code: str, year: int) -> list[Request]:
    """Every request of the fund-year, by quarter and unit."""
    t = store.feedback
    with engine.connect() as conn:
        rows = conn.execute(
            select(t).where(t.c.fund_code == fund_code, t.c.year == year).order_by(t.c.quarter, t.c.unit)
        ).mappings()
        return [_row(r) for r in rows]


def _where(fund_code: str, unit: str, year: int, quarter: int) -> Any:
    t = store.feedback
    return (t.c.fund_code == fund_code) & (t.c.unit == unit) & (t.c.year == year) & (t.c.quarter == quarter)


def answer(
    engine: Engine,
    fund_code: str,
    unit: str,
    year: int,
    quarter: int,
    *,
    cause: str,
    measures: str,
    by: str,
    at: datetime | None = None,
    channel: str = "hitl",
) -> bool:
    """Record the unit's answer; False when there is no open request for it or it
    was answered already (the first answer stands: it is what was audited)."""
    cause, measures = cause.strip()[:MAX_TEXT], measures.strip()[:MAX_TEXT]
    if not cause:
        raise ValueError("原因不能为空")
    t = store.feedback
    with engine.begin() as conn:
        done = conn.execute(
            update(t)
            .where(_where(fund_code, unit, year, quarter), t.c.status.in_((OPEN, REMINDED, UNANSWERED)))
            .values(
                status=ANSWERED,
                cause=cause,
                measures=measures,
                answered_by=by[:200],
                answered_at=at or store.now_local(),
                channel=channel,
            )
        ).rowcount
    return bool(done)


def mark(engine: Engine, fund_code: str, unit: str, year: int, quarter: int, status: str) -> bool:
    """Move an unanswered request on: REMINDED once after its deadline, then UNANSWERED."""
    if status not in (REMINDED, UNANSWERED):
        raise ValueError(status)
    t = store.feedback
    before = (OPEN,) if status == REMINDED else (OPEN, REMINDED)
    values: dict[str, Any] = {"status": status}
    if status == REMINDED:
        values["reminded_at"] = store.now_local()
    with engine.begin() as conn:
        return bool(
            conn.execute(
                update(t).where(_where(fund_code, unit, year, quarter), t.c.status.in_(before)).values(**values)
            ).rowcount
        )


@dataclass(frozen=True)
class QuarterStory:
    """What the year-end says of one lagging quarter: the cause and measures
    text and where they came from (``answered`` by the units, ``configured``
    in fund.yaml, or ``none``)."""

    cause: str | None
    measures: tuple[str, ...]
    source: str
    units: tuple[str, ...] = ()


def _grouped(rows: Sequence[Request], field: str) -> list[str]:
    """ "A、B反馈：text" per distinct answer text, units in answer order: units
    that gave the same answer are quoted once, not repeated."""
    texts: dict[str, list[str]] = {}
    for r in rows:
        texts.setdefault(str(getattr(r, field)).rstrip("。；;"), []).append(r.unit)
    said = "反馈：" if field == "cause" else "："
    return [f"{'、'.join(units)}{said}{text}" for text, units in texts.items()]


def quarter_stories(
    answered: Sequence[Request], lagging_quarters: Iterable[int], fallback: Mapping[int, str]
) -> dict[int, QuarterStory]:
    """Per lagging quarter: the units' recorded answers quoted, else fund.yaml's cause."""
    out: dict[int, QuarterStory] = {}
    for q in sorted(set(lagging_quarters)):
        got = [r for r in answered if r.quarter == q and r.status == ANSWERED and r.cause]
        if got:
            cause = "；".join(_grouped(got, "cause"))
            measures = tuple(_grouped([r for r in got if r.measures], "measures"))
            out[q] = QuarterStory(cause, measures, "answered", tuple(r.unit for r in got))
        elif fallback.get(q):
            out[q] = QuarterStory(fallback[q], (), "configured")
        else:
            out[q] = QuarterStory(None, (), "none")
    return out


# Markdown's punctuation (CommonMark "ASCII punctuation" that can start or end
# markup). Airflow renders a HITL body as Markdown; unit and fund names come
# from data, so they are escaped, not trusted.
_MD_SPECIAL = set("\\`*_{}[]()<>#+-.!|~")


def md_escape(text: str) -> str:
    """Text shown literally inside Markdown."""
    return "".join("\\" + c if c in _MD_SPECIAL else c for c in str(text))


def quarter_figures(figures: Any) -> dict[str, str | None]:
    """A unit's execution.QuarterFigures as the request shows them (2-decimal text,
    rounded half up like every other figure: 22.00, not 22)."""

    def two(value: Any) -> str | None:
        return None if value is None else f"{round2(value):.2f}"

    return {
        "cumulative_rate": two(figures.cumulative_rate),
        "pace": two(figures.pace),
        "gap_points": two(figures.gap_points),
    }


def request_message(
    fund_name: str, request: Request, figures: Mapping[str, str | None], quarter_name: str, *, reminder: bool = False
) -> tuple[str, str]:
    """Subject and Markdown body of the request shown to the unit's contact
    (Airflow's Required Actions): the quarter's figures (:func:`quarter_figures`),
    the deadline, what to write."""
    deadline = f"{request.deadline:%Y-%m-%d %H:%M}"
    lead = "【催办】" if reminder else "【核实反馈】"
    subject = f"{lead}{request.unit} {request.year}年{quarter_name}支出进度滞后，请反馈原因和整改措施"
    rate = "—" if figures["cumulative_rate"] is None else f"{figures['cumulative_rate']}%"
    pace = f"{figures['pace']}%"
    gap = "—" if figures["gap_points"] is None else f"{figures['gap_points']}个百分点"
    lines = [
        f"**专项资金**：{md_escape(fund_name)}",
        f"**预算单位**：{md_escape(request.unit)}",
        f"**{quarter_name}末累计执行率**：{md_escape(rate)}（序时进度 {md_escape(pace)}，差距 {md_escape(gap)}）",
        f"**反馈截止**：{md_escape(deadline)}（北京时间）",
        "",
        "请填写支出进度滞后的**原因**和已采取或拟采取的**整改措施**后提交。"
        "反馈内容将记入年度绩效自评报告的“存在问题”和“改进意见”，并留存备查。",
    ]
    if reminder:
        lines.insert(0, "反馈期限已过，尚未收到贵单位的反馈，请尽快填写。\n")
    return subject, "\n\n".join(lines)
