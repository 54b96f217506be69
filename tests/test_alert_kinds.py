"""The table of alert kinds (alert_kinds.KINDS): the templates, the month close, the
config schema and the digest derive from it, so a new kind is one function and one row."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from budget_monitor import alert_kinds, alerts, outbox, store
from budget_monitor.alert_kinds import AlertKind
from budget_monitor.config import AlertsConfig, FundConfig
from budget_monitor.execution import compute_execution

from seed_shaped import CFG, LINEAR, frames

TEMPLATES = Path(alerts.__file__).parent / "templates"


def test_every_kind_has_its_templates_subject_macro_label_and_month_close_function() -> None:
    subjects = alerts.render_environment().get_template("alert_subjects.txt.j2").module
    for row in alert_kinds.KINDS.values():
        assert (TEMPLATES / f"{row.template}.txt.j2").is_file() and (TEMPLATES / f"{row.template}.html.j2").is_file()
        assert callable(getattr(subjects, row.subject)), row
        assert row.label and row.audience in ("fund", "unit")
        assert row.monthly == (row.name in alerts._KIND_FUNCTIONS), row
        assert not row.severities or row.digest  # severities only matter to alerts.immediate
    assert [k.name for k in alert_kinds.monthly()] == ["month_warning", "quarter_lagging"]
    assert alert_kinds.label("digest") == "月度汇总" and alert_kinds.label("unknown") == "unknown"


def test_a_kind_without_a_row_cannot_be_registered() -> None:
    with pytest.raises(ValueError, match="not a month-close kind"):
        alerts.kind("year_end_report")(lambda close: ())
    with pytest.raises(ValueError, match="not a month-close kind"):
        alerts.kind("no_such_kind")(lambda close: ())


def _idle_unit() -> object:
    """One unit paying only in January: behind pace and idle in June."""
    alloc, pay = frames(
        [("台山市市场监督管理局", date(2021, 1, 1), 1_000_000, "年初")],
        [("台山市市场监督管理局", date(2021, 1, 10), 100_000)],
    )
    return compute_execution(alloc, pay, year=2021, through_month=6, pace=LINEAR)


def test_a_new_kind_is_one_function_and_one_row(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """当月无支出: a row of KINDS and its @kind function. Nothing else changes: the
    schema accepts it in alerts.immediate, the close owes it, its mail uses the row's
    templates and subject, the digest and the dashboard show its label."""
    monkeypatch.setattr(alerts, "_KIND_FUNCTIONS", dict(alerts._KIND_FUNCTIONS))
    monkeypatch.setitem(
        alert_kinds.KINDS,
        "no_spend",
        AlertKind("no_spend", "当月无支出", "unit", "alert_month", "month", monthly=True, digest=True),
    )

    @alerts.kind("no_spend")
    def no_spend(close: alerts.Close) -> Iterator[alerts.Due]:
        year, month = close.result.year, close.month
        for series in close.result.units:
            m = series.month(month)
            if m.executed_fen == 0:
                view = alerts._month_view(m)
                yield alerts.Due(
                    key=(close.cfg.code, series.unit, f"{year}-{month:02d}", "no_spend"),
                    severity=m.severity,
                    subject={
                        "title": close.cfg.title,
                        "unit": series.unit,
                        "period_zh": close.period_zh,
                        "severity_zh": "当月无支出",
                    },
                    detail=close.detail(
                        "no_spend", series.unit, f"{year}-{month:02d}", close.period_zh, view, "当月没有支出"
                    ),
                    context=lambda series=series, view=view: {"unit": series.unit, "m": view, "forecast": None},
                )

    assert "no_spend" in AlertsConfig(immediate=["no_spend"]).immediate
    schema = FundConfig.model_json_schema()["$defs"]["AlertsConfig"]["properties"]["immediate"]["items"]
    assert "no_spend" in schema["enum"]
    result = _idle_unit()
    keys = alerts.due_keys(CFG, result, 6)
    assert (CFG.code, "台山市市场监督管理局", "2021-06", "no_spend") in keys
    assert keys[-1][3] == "no_spend"  # table order: after the month warnings and the quarter
    (mail,) = [a for a in alerts.build_alerts(CFG, result, 6) if a.kind == "no_spend"]
    assert mail.subject.endswith("（当月无支出）") and "台山市市场监督管理局" in mail.text

    engine = store.open_store(f"sqlite:///{tmp_path / 's.db'}")
    try:
        outbox.hold(engine, [alerts.hold(CFG, d) for d in alerts.due(CFG, result, 6)])
        outbox.gather(engine, "2021-06")
        digest = _digests(engine)[CFG.recipients[0]]
        assert "【当月无支出】台山市市场监督管理局" in digest and "当月没有支出" in digest
    finally:
        store.dispose_all()
    assert alert_kinds.label("no_spend") == "当月无支出"

    monkeypatch.undo()
    assert (
        "no_spend"
        not in FundConfig.model_json_schema()["$defs"]["AlertsConfig"]["properties"]["immediate"]["items"]["enum"]
    )
    assert all(k[3] != "no_spend" for k in alerts.due_keys(CFG, result, 6))


def _digests(engine) -> dict[str, str]:
    import email
    import email.policy

    from sqlalchemy import select

    o = store.outbox.c
    with engine.connect() as conn:
        rows = conn.execute(select(o.unit, o.message).where(o.kind == "digest")).all()
    return {
        unit: email.message_from_string(raw, policy=email.policy.default).get_body(("plain",)).get_content()
        for unit, raw in rows
    }
