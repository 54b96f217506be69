"""执行监控看板: the finance office's dashboard in the Airflow UI (Chinese, read-only).

Mounted by ``budget_monitor_plugin.py`` as a FastAPI app under
``/budget-dashboard`` and linked from the navigation bar. The figures come
from the store through ``budget_monitor.dashboard_data``; this module only
lays them out as HTML. It is meant for a government intranet: no CDN, no
web font, no script; the chart is an SVG drawn here and the one stylesheet is
served from ``static/`` by this app. Every text from data is escaped.

Pages (relative links only, so the app works under any prefix or proxy path):

- ``/``                               every fund: latest rate, pace, gap, light
- ``/fund/<code>/``                   one fund: chart, months, quarters, units,
                                      alerts, rejected files, reports
- ``/fund/<code>/unit?name=<unit>``   one budget unit of the fund
- ``/fund/<code>/report/<file>``      a year-end output (download)
- ``/data.json``, ``/fund/<code>/data.json``, ``/fund/<code>/unit.json?name=``: the same data
- ``/static/dashboard.css``

Access: Airflow's own authentication and authorization
(``airflow.api_fastapi.core_api.security.requires_access_view`` with
``AccessView.WEBSITE``: any user who may see the Airflow UI, the Viewer role
included). A plugin app is not protected by Airflow unless it asks.
"""

from __future__ import annotations

import html
import mimetypes
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from budget_monitor_airflow import settings
from budget_monitor_airflow.periods import QUARTER_ZH

STATIC = Path(__file__).resolve().parent / "static"

LIGHT_LABEL = {"green": "绿灯", "yellow": "黄灯", "red": "红灯", "none": "无预算"}
LIGHT_HINT = {
    "green": "达到或超过序时进度",
    "yellow": "落后序时进度（黄色预警）",
    "red": "严重落后序时进度（红色预警）",
    "none": "尚无预算，无法计算执行率",
}
STATUS_LABEL = {"pending": "待发送", "sent": "已发送", "held": "待月度汇总", "digested": "已汇入月度汇总"}
FUND_STATUS = {
    "no_config": "未找到该资金的 fund.yaml，无法计算序时进度",
    "not_closed": "本年度尚无月份结账",
}
ANSWER_PLACEHOLDER = "（核实反馈功能尚未启用）"
# A unit without a contact in contacts.csv: its alerts go to the finance office.
NO_CONTACT = "无联系人，已转财务科"


def e(value: Any) -> str:
    """Escape any data text for HTML (text and attribute values)."""
    return html.escape("" if value is None else str(value), quote=True)


def _when(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return str(value)


def _yuan(fen: int | None) -> str:
    from budget_monitor.money_fmt import fen_to_yuan_grouped

    return "—" if fen is None else fen_to_yuan_grouped(int(fen))


def _pct(value: str | None) -> str:
    return "—" if value is None else f"{value}%"


def _gap(value: str | None) -> str:
    return "—" if value is None else value


def _light(light: str) -> str:
    return (
        f"<span class='light light-{e(light)}' title='{e(LIGHT_HINT.get(light, ''))}'>"
        f"{e(LIGHT_LABEL.get(light, light))}</span>"
    )


def _month_label(month: str | None) -> str:
    if not month:
        return "—"
    year, mon = month.split("-")
    return f"{year}年{int(mon)}月"


def _period_label(period: str, kind: str) -> str:
    if kind == "rejection":
        return "—"  # the period of a rejection notice is the file's digest
    if len(period) == 7 and period[4] == "-" and period[5:].isdigit():
        return _month_label(period)
    if "-Q" in period:
        year, q = period.split("-Q", 1)
        return f"{year}年{QUARTER_ZH[int(q)]}"
    return period


def _table(headers: list[str], rows: list[str], empty: str) -> str:
    """A table; ``headers`` and ``empty`` are our own text, ``rows`` escaped already."""
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join(rows) or f"<tr><td colspan='{len(headers)}' class='empty'>{empty}</td></tr>"
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def page(title: str, body: str, *, css: str, crumbs: list[tuple[str, str | None]]) -> str:
    """A whole page; ``css`` and crumb links are relative to the page."""
    trail = " › ".join(f"<a href='{e(href)}'>{e(text)}</a>" if href else e(text) for text, href in crumbs)
    return (
        "<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{e(title)}</title>" + (f"<link rel='stylesheet' href='{e(css)}'>" if css else "") + "</head><body>"
        f"<nav class='crumbs'>{trail}</nav>{body}"
        "<footer>数据来自预算执行监控数据库（每月结账后的数字）；灯号：绿灯＝达到序时进度，"
        "黄灯＝落后序时进度，红灯＝落后超过红色预警线。</footer></body></html>"
    )


# --------------------------------------------------------------------- chart


def chart_svg(months: list[dict[str, Any]], *, title: str) -> str:
    """The execution rate month by month (solid) against the time pace (dashed),
    y axis in %, x axis the 12 months of the year; drawn here, no script."""
    from decimal import Decimal

    w, h, left, right, top, bottom = 760, 320, 56, 20, 28, 44
    rates = [Decimal(m["rate"]) for m in months if m["rate"] is not None]
    paces = [Decimal(m["pace"]) for m in months if m["pace"] is not None]
    high = max([Decimal(100), *rates, *paces])
    low = min([Decimal(0), *rates])
    step = 20 if high - low <= 140 else 50
    y_max = int(-(-high // step) * step)
    y_min = int((low // step) * step)
    span = (y_max - y_min) or 1

    def x(month: int) -> float:
        return left + (month - 1) * (w - left - right) / 11

    def y(value: Decimal) -> float:
        return top + float((Decimal(y_max) - value) / span) * (h - top - bottom)

    out = [
        f"<svg class='chart' viewBox='0 0 {w} {h}' role='img' aria-label='{e(title)}'>",
        f"<title>{e(title)}</title>",
    ]
    for v in range(y_min, y_max + 1, step):
        yy = y(Decimal(v))
        out.append(f"<line class='grid' x1='{left}' y1='{yy:.1f}' x2='{w - right}' y2='{yy:.1f}'/>")
        out.append(f"<text class='axis' x='{left - 6}' y='{yy + 4:.1f}' text-anchor='end'>{v}%</text>")
    for m in range(1, 13):
        out.append(f"<text class='axis' x='{x(m):.1f}' y='{h - bottom + 18}' text-anchor='middle'>{m}月</text>")

    def points(key: str) -> str:
        return " ".join(f"{x(int(m['month'][5:7])):.1f},{y(Decimal(m[key])):.1f}" for m in months if m[key] is not None)

    out.append(f"<polyline class='pace' points='{points('pace')}'/>")
    out.append(f"<polyline class='rate' points='{points('rate')}'/>")
    for m in months:
        if m["rate"] is None:
            continue
        cx, cy = x(int(m["month"][5:7])), y(Decimal(m["rate"]))
        tip = f"{_month_label(m['month'])}：执行率 {m['rate']}%，序时进度 {m['pace']}%，差距 {m['gap']} 个百分点"
        out.append(
            f"<circle class='dot dot-{e(m['light'])}' cx='{cx:.1f}' cy='{cy:.1f}' r='5'>"
            f"<title>{e(tip)}</title></circle>"
        )
    lx = left + 8
    out.append(
        f"<line class='rate' x1='{lx}' y1='14' x2='{lx + 28}' y2='14'/>"
        f"<text class='legend' x='{lx + 34}' y='18'>累计执行率</text>"
        f"<line class='pace' x1='{lx + 130}' y1='14' x2='{lx + 158}' y2='14'/>"
        f"<text class='legend' x='{lx + 164}' y='18'>序时进度</text>"
    )
    out.append(f"<text class='axis' x='{w - right}' y='{h - 6}' text-anchor='end'>月份</text></svg>")
    return "".join(out)


# --------------------------------------------------------------------- pages


def render_overview(funds: list[dict[str, Any]]) -> str:
    counts = {k: sum(1 for f in funds if f["status"] == "ok" and f["light"] == k) for k in ("red", "yellow", "green")}
    rows = []
    for f in funds:
        note = FUND_STATUS.get(f["status"])
        units = f"{f['units']}（红 {f['units_red']}，黄 {f['units_yellow']}）" if f["status"] == "ok" else "—"
        lag = "、".join(QUARTER_ZH[q] for q in f["lagging_quarters"]) or ("无" if f["status"] == "ok" else "—")
        rows.append(
            f"<tr class='fund row-{e(f['light'])}' data-code='{e(f['code'])}'>"
            f"<td><a href='fund/{e(quote(f['code'], safe=''))}/'>{e(f['name'])}</a>"
            f"<div class='code'>{e(f['code'])}</div></td>"
            f"<td>{e(f['department'])}</td><td>{e(f['year'])}</td>"
            f"<td>{e(_month_label(f['month']))}</td>"
            f"<td class='num' data-field='rate'>{e(_pct(f['rate']))}</td>"
            f"<td class='num' data-field='pace'>{e(_pct(f['pace']))}</td>"
            f"<td class='num' data-field='gap'>{e(_gap(f['gap']))}</td>"
            f"<td data-field='light'>{_light(f['light']) if f['status'] == 'ok' else e(note)}</td>"
            f"<td>{e(units)}</td><td>{e(lag)}</td>"
            f"<td class='num'>{e(f['alerts_unsent'])}</td><td class='num'>{e(f['rejections'])}</td></tr>"
        )
    summary = (
        f"<p class='summary'>共 {len(funds)} 项资金：{_light('red')} {counts['red']} 项，"
        f"{_light('yellow')} {counts['yellow']} 项，{_light('green')} {counts['green']} 项。</p>"
    )
    table = _table(
        [
            "专项资金",
            "主管部门",
            "年度",
            "截至月份",
            "执行率",
            "序时进度",
            "差距（百分点）",
            "灯号",
            "预算单位（红/黄灯）",
            "落后季度",
            "待发送邮件",
            "退回文件",
        ],
        rows,
        "数据库中尚无专项资金",
    )
    return page(
        "预算执行监控看板",
        f"<h1>预算执行监控看板</h1>{summary}{table}",
        css="static/dashboard.css",
        crumbs=[("执行监控看板", None)],
    )


def _months_table(months: list[dict[str, Any]]) -> str:
    rows = [
        f"<tr data-month='{e(m['month'])}'><td>{e(_month_label(m['month']))}</td>"
        f"<td class='num'>{e(_yuan(m['executed_fen']))}</td><td class='num'>{e(_yuan(m['cumulative_fen']))}</td>"
        f"<td class='num'>{e(_yuan(m['budget_fen']))}</td>"
        f"<td class='num' data-field='rate'>{e(_pct(m['rate']))}</td>"
        f"<td class='num' data-field='pace'>{e(_pct(m['pace']))}</td>"
        f"<td class='num' data-field='gap'>{e(_gap(m['gap']))}</td>"
        f"<td class='num'>{e(_yuan(m['to_reach_pace_fen']))}</td><td>{_light(m['light'])}</td></tr>"
        for m in months
    ]
    return _table(
        [
            "月份",
            "当月支出（元）",
            "累计支出（元）",
            "全年预算（元）",
            "执行率",
            "序时进度",
            "差距（百分点）",
            "达到序时尚需支出（元）",
            "灯号",
        ],
        rows,
        "尚无结账月份",
    )


def _quarters_table(quarters: list[dict[str, Any]], *, with_units: bool) -> str:
    rows = []
    for q in quarters:
        units = "、".join(q["units_behind"]) or "无"
        rows.append(
            f"<tr data-quarter='{e(q['quarter'])}'><td>{e(QUARTER_ZH[q['quarter']])}</td>"
            f"<td class='num'>{e(_pct(q['rate']))}</td><td class='num'>{e(_pct(q['pace']))}</td>"
            f"<td class='num'>{e(_gap(q['gap']))}</td><td>{'滞后' if q['lagging'] else '达到'}</td>"
            + (f"<td>{e(units)}</td>" if with_units else "")
            + "</tr>"
        )
    headers = ["季度", "季末执行率", "季末序时进度", "差距（百分点）", "是否达到序时进度"]
    return _table(headers + (["落后的预算单位"] if with_units else []), rows, "尚无结束的季度")


def kind_label(kind: str) -> str:
    from budget_monitor.alert_kinds import label

    return label(kind)


def _status(a: dict[str, Any]) -> str:
    """待发送 / 已发送; an alert of the monthly digest names the digest's month."""
    text = STATUS_LABEL.get(a["status"], a["status"])
    if a["status"] == "digested" and a.get("digest"):
        text = f"已汇入{_month_label(a['digest'])}月度汇总" + ("（已发送）" if a["sent_at"] else "（待发送）")
    return text


def _alerts_table(alerts: list[dict[str, Any]], *, with_unit: bool) -> str:
    rows = []
    for a in alerts:
        unit = f"<td>{e(a['unit'] or '（资金整体）')}</td>" if with_unit else ""
        rows.append(
            f"<tr><td class='nowrap'>{e(_period_label(a['period'], a['kind']))}</td>{unit}"
            f"<td class='nowrap'>{e(kind_label(a['kind']))}</td><td>{e(a['subject'])}</td>"
            f"<td class='nowrap'>{e(_status(a))}</td>"
            f"<td class='nowrap'>{e(_when(a['sent_at']))}</td>"
            f"<td class='answer placeholder'>{e(a['answer'] or ANSWER_PLACEHOLDER)}</td></tr>"
        )
    headers = ["期间"] + (["预算单位"] if with_unit else []) + ["类型", "邮件主题", "状态", "发送时间", "核实反馈"]
    return _table(headers, rows, "尚无预警或通知")


def _headline(m: dict[str, Any]) -> str:
    return (
        "<div class='headline'>"
        f"<div><span class='label'>截至</span><b>{e(_month_label(m['month']))}</b></div>"
        f"<div><span class='label'>执行率</span><b data-field='rate'>{e(_pct(m['rate']))}</b></div>"
        f"<div><span class='label'>序时进度</span><b data-field='pace'>{e(_pct(m['pace']))}</b></div>"
        f"<div><span class='label'>差距（百分点）</span><b data-field='gap'>{e(_gap(m['gap']))}</b></div>"
        f"<div><span class='label'>灯号</span>{_light(m['light'])}</div>"
        f"<div><span class='label'>全年预算</span><b>{e(_yuan(m['budget_fen']))} 元</b></div>"
        f"<div><span class='label'>累计支出</span><b>{e(_yuan(m['cumulative_fen']))} 元</b></div>"
        "</div>"
    )


def _series_parts(data: dict[str, Any], title: str, *, with_units: bool) -> list[str]:
    """The headline, the execution chart and the month and quarter tables of a fund or unit."""
    series = data["series"]
    if series is None:
        return [f"<p class='notice'>{e(FUND_STATUS.get(data['status'], ''))}</p>"]
    return [
        _headline(series["latest"]),
        "<h2>月度执行进度</h2>",
        chart_svg(series["months"], title=f"{title} 累计执行率与序时进度"),
        _months_table(series["months"]),
        "<h2>季度</h2>",
        _quarters_table(series["quarters"], with_units=with_units),
    ]


def _contact_text(contact: dict[str, Any] | None) -> str:
    """The unit's contacts ("李明 <liming@…>"), or the fallback marker."""
    if not contact or contact["fallback"]:
        return NO_CONTACT
    return "；".join(f"{c['name']} <{c['email']}>" if c["name"] else c["email"] for c in contact["contacts"])


def _contact_cell(contact: dict[str, Any] | None) -> str:
    fallback = not contact or contact["fallback"]
    css = "contact no-contact" if fallback else "contact"
    return f"<td class='{css}' data-field='contact'>{e(_contact_text(contact))}</td>"


def _contacts_notice(data: dict[str, Any]) -> str:
    """A broken contacts.csv is said on the page (the monthly close refuses it too)."""
    error = data.get("contacts_error")
    return f"<p class='notice' data-field='contacts-error'>部门联系人表有误：{e(error)}</p>" if error else ""


def render_fund(data: dict[str, Any], reports: dict[str, Any]) -> str:
    fund = data["fund"]
    parts = [
        f"<h1>{e(fund['name'])}</h1>",
        f"<p class='meta'>资金代码 {e(fund['code'])} · 主管部门 {e(fund['department'])} · 年度 {e(fund['year'])}</p>",
        _contacts_notice(data),
    ]
    parts += _series_parts(data, fund["name"], with_units=True)
    if data["series"] is not None:
        rows = []
        for u in data["units"]:
            m = u["latest"]
            lag = "、".join(QUARTER_ZH[q] for q in u["lagging_quarters"]) or "无"
            rows.append(
                f"<tr class='unit' data-unit='{e(u['unit'])}'>"
                f"<td><a href='unit?name={e(quote(u['unit'], safe=''))}'>{e(u['unit'])}</a></td>"
                f"<td class='num'>{e(_yuan(m['budget_fen']))}</td><td class='num'>{e(_yuan(m['cumulative_fen']))}</td>"
                f"<td class='num' data-field='rate'>{e(_pct(m['rate']))}</td>"
                f"<td class='num' data-field='pace'>{e(_pct(m['pace']))}</td>"
                f"<td class='num' data-field='gap'>{e(_gap(m['gap']))}</td>"
                f"<td>{_light(m['light'])}</td><td>{e(lag)}</td>"
                f"{_contact_cell(u.get('contact'))}</tr>"
            )
        parts.append("<h2>预算单位</h2>")
        parts.append(
            _table(
                [
                    "预算单位",
                    "全年预算（元）",
                    "累计支出（元）",
                    "执行率",
                    "序时进度",
                    "差距（百分点）",
                    "灯号",
                    "落后季度",
                    "联系人",
                ],
                rows,
                "尚无预算单位",
            )
        )
    parts.append("<h2>预警</h2>")
    parts.append(_alerts_table(data["alerts"], with_unit=True))
    parts.append("<h2>核实反馈</h2>")
    parts.append(_feedback_table(data["feedback"], with_unit=True))
    parts.append("<h2>被退回的数据文件</h2>")
    parts.append(
        _table(
            ["退回时间", "文件", "原因"],
            [
                f"<tr><td>{e(_when(r['rejected_at']))}</td><td>{e(r['name'])}</td><td class='reason'>{e(r['reason'])}</td></tr>"
                for r in data["rejections"]
            ],
            "没有被退回的文件",
        )
    )
    parts.append("<h2>年度自评报告</h2>")
    if reports["draft"] is not None:
        parts.append(f"<p class='notice' data-field='report-status'>{e(_report_status(reports, data['approval']))}</p>")
    parts.append(
        _table(
            ["文件", "类型", "大小"],
            [
                f"<tr><td><a href='report/{e(quote(f['name'], safe=''))}' download>{e(f['name'])}</a></td>"
                f"<td>{e(f['label'])}</td><td class='num'>{e(_size(f['size']))}</td></tr>"
                for f in reports["files"]
            ],
            "尚未生成年度自评报告",
        )
    )
    return page(
        fund["name"],
        "".join(parts),
        css="../../static/dashboard.css",
        crumbs=[("执行监控看板", "../../"), (fund["name"], None)],
    )


FEEDBACK_STATUS = {"open": "待反馈", "reminded": "已催办", "answered": "已反馈", "unanswered": "逾期未反馈"}
DECISIONS = {"approved": "批准", "rejected": "退回"}


def _feedback_table(rows: list[dict[str, Any]], *, with_unit: bool) -> str:
    body = [
        "<tr class='feedback'>"
        + (f"<td>{e(r['unit'])}</td>" if with_unit else "")
        + f"<td>{e(QUARTER_ZH[r['quarter']])}</td><td>{e(FEEDBACK_STATUS.get(r['status'], r['status']))}</td>"
        f"<td>{e(_when(r['deadline']))}</td><td class='reason'>{e(r['cause'] or '')}</td>"
        f"<td class='reason'>{e(r['measures'] or '')}</td>"
        f"<td>{e(r['answered_by'] or '')}</td><td>{e(_when(r['answered_at']) if r['answered_at'] else '')}</td></tr>"
        for r in rows
    ]
    headers = (["预算单位"] if with_unit else []) + [
        "季度",
        "状态",
        "反馈截止",
        "原因",
        "整改措施",
        "反馈人",
        "反馈时间",
    ]
    return _table(headers, body, "尚无核实反馈请求（季度末落后于序时进度的单位会被要求反馈）")


def _report_status(reports: dict[str, Any], decisions: list[dict[str, Any]]) -> str:
    """正式稿 (who approved, when) / 草稿 waiting or sent back, from the store's decisions."""
    last = decisions[-1] if decisions else None
    if not reports["draft"]:
        if last and last["decision"] == "approved":
            return f"正式稿：经 {last['by']} 于 {_when(last['at'])} 批准"
        return "正式稿"
    if last and last["decision"] == "rejected":
        return f"草稿：已被 {last['by']} 于 {_when(last['at'])} 退回（{last['comment'] or ''}），待数据更正后重新生成"
    return "草稿：待财务科审批（Airflow 待办事项 Required Actions），尚未发送"


def _size(n: int) -> str:
    return f"{n / 1024:.1f} KB" if n >= 1024 else f"{n} 字节"


def render_unit(data: dict[str, Any]) -> str:
    fund, unit = data["fund"], data["unit"]
    parts = [
        f"<h1>{e(unit)}</h1>",
        f"<p class='meta'>{e(fund['name'])}（{e(fund['code'])}）</p>",
        _contacts_notice(data),
    ]
    parts += _series_parts(data, unit, with_units=False)
    parts.append("<h2>预警</h2>")
    contact = data.get("contact")
    if not contact or contact["fallback"]:
        parts.append(
            f"<p class='notice no-contact' data-field='contact'>{NO_CONTACT}：本单位未在部门联系人表（contacts.csv）"
            "中登记联系人，预警发往资金的财务科室。</p>"
        )
    else:
        parts.append(
            f"<p class='notice' data-field='contact'>预警发送本单位联系人 {e(_contact_text(contact))}，抄送财务科室。</p>"
        )
    parts.append(_alerts_table(data["alerts"], with_unit=False))
    parts.append("<h2>核实反馈</h2>")
    parts.append(_feedback_table(data["feedback"], with_unit=False))
    return page(
        unit,
        "".join(parts),
        css="../../static/dashboard.css",
        crumbs=[("执行监控看板", "../../"), (fund["name"], "./"), (unit, None)],
    )


# ----------------------------------------------------------------------- app


def create_app(
    *,
    db_url: Callable[[], str | None] | None = None,
    funds_root: Callable[[], Path] | None = None,
    reports_root: Callable[[], Path] | None = None,
):  # -> fastapi.FastAPI
    """The dashboard app; the three sources default to the DAGs' settings
    (``budget_monitor_db`` connection or BUDGET_MONITOR_DB_URL, the inbox root,
    the reports root) and are read at each request."""
    from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
    from airflow.api_fastapi.core_api.security import requires_access_view
    from budget_monitor import dashboard_data as dd
    from budget_monitor import store
    from fastapi import Depends, FastAPI, HTTPException, Query
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse
    from sqlalchemy.exc import SQLAlchemyError

    get_url = db_url or settings.db_url
    get_funds = funds_root or settings.funds_root
    get_reports = reports_root or settings.reports_root

    access = requires_access_view(AccessView.WEBSITE)
    app = FastAPI(
        title="budget-monitor dashboard",
        dependencies=[Depends(access)],
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.access_dependency = access  # tests override it (app.dependency_overrides)

    def engine():
        return store.open_store(get_url())

    def configs() -> dict[str, Any]:
        return dd.fund_configs(get_funds())

    def people() -> tuple[Any, str | None]:
        """The department's contacts.csv; a broken file is shown, not a 500."""
        from budget_monitor.contacts import Contacts, ContactsError, load

        try:
            return load(get_funds()), None
        except ContactsError as exc:
            return Contacts(), str(exc)

    @app.exception_handler(SQLAlchemyError)
    def store_down(_request, _exc) -> HTMLResponse:
        return HTMLResponse(
            page(
                "无法读取数据库",
                "<h1>暂时无法读取预算执行监控数据库</h1>"
                "<p class='notice'>请稍后刷新；如持续出现，请联系系统管理员。</p>",
                css="",
                crumbs=[],
            ),
            status_code=503,
        )

    @app.get("/", response_class=HTMLResponse)
    def overview_page() -> str:
        return render_overview(dd.overview(engine(), configs()))

    @app.get("/data.json")
    def overview_json() -> list[dict]:
        return dd.overview(engine(), configs())

    def fund_or_404(code: str) -> dict[str, Any]:
        contacts, error = people()
        data = dd.fund_page(engine(), configs(), code, contacts)
        if data is None:
            raise HTTPException(status_code=404, detail="没有这项专项资金")
        data["contacts_error"] = error
        return data

    @app.get("/fund/{code}")
    def fund_no_slash(code: str) -> RedirectResponse:
        # Relative links of the fund page assume the trailing slash.
        return RedirectResponse(f"{quote(code, safe='')}/", status_code=307)

    @app.get("/fund/{code}/", response_class=HTMLResponse)
    def fund_html(code: str) -> str:
        data = fund_or_404(code)
        return render_fund(data, dd.report_files(get_reports(), code, data["fund"]["year"]))

    @app.get("/fund/{code}/data.json")
    def fund_json(code: str) -> dict:
        data = fund_or_404(code)
        data["reports"] = dd.report_files(get_reports(), code, data["fund"]["year"])
        return data

    def unit_or_404(code: str, name: str) -> dict[str, Any]:
        contacts, error = people()
        data = dd.unit_page(engine(), configs(), code, name, contacts)
        if data is None:
            raise HTTPException(status_code=404, detail="没有这个预算单位")
        data["contacts_error"] = error
        return data

    @app.get("/fund/{code}/unit", response_class=HTMLResponse)
    def unit_html(code: str, name: str = Query(...)) -> str:
        return render_unit(unit_or_404(code, name))

    @app.get("/fund/{code}/unit.json")
    def unit_json(code: str, name: str = Query(...)) -> dict:
        return unit_or_404(code, name)

    @app.get("/fund/{code}/report/{name}")
    def report(code: str, name: str) -> FileResponse:
        fund = fund_or_404(code)["fund"]
        path = dd.report_path(get_reports(), code, fund["year"], name)
        if path is None:
            raise HTTPException(status_code=404, detail="没有这个报告文件")
        media = mimetypes.guess_type(name)[0] or "application/octet-stream"
        return FileResponse(path, media_type=media, filename=name)

    @app.get("/static/dashboard.css")
    def css() -> FileResponse:
        return FileResponse(STATIC / "dashboard.css", media_type="text/css")

    @app.exception_handler(HTTPException)
    def not_found(_request, exc: HTTPException):
        if exc.status_code in (401, 403):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
        return HTMLResponse(page("未找到", f"<h1>{e(exc.detail)}</h1>", css="", crumbs=[]), status_code=exc.status_code)

    return app
