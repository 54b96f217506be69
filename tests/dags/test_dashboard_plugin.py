"""The dashboard plugin: mounted and linked in Airflow, behind Airflow's auth, showing
the store's figures, escaping every data text, and needing nothing from another host.

The store is the example fund closed January to July through budget_monitor.pipeline,
with hostile text where people type it: the fund's name (fund.yaml), a unit's name
and a rejected file's value.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from urllib.parse import quote

import pytest

REPO = Path(__file__).resolve().parents[2]
JIANGMEN = REPO / "examples" / "jiangmen-2021"
CODE = "JM-2021-YPJG"
EVIL_NAME = "药品监督<b onmouseover=alert(1)>资金</b>"
EVIL_UNIT = "<img src=x onerror=alert(2)>单位"
EVIL_VALUE = "<script>alert(3)</script>"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Inbox, store and reports of the example fund, closed through July (plus a draft report)."""
    from datetime import date

    from budget_monitor import store
    from budget_monitor.config import load_fund_config
    from budget_monitor.pipeline import MonthRejected, close_month, load_month, run_year_end

    tmp = tmp_path_factory.mktemp("dashboard")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BUDGET_MONITOR_HOME", str(tmp / "home"))
        fund = tmp / "inbox" / JIANGMEN.name
        shutil.copytree(JIANGMEN, fund)
        # The department's contacts: 台山 and 开平 have one, 恩平 and 江门 fall back.
        shutil.copy(JIANGMEN.parent / "contacts.csv", fund.parent / "contacts.csv")
        yaml_text = (fund / "fund.yaml").read_text(encoding="utf-8")
        name = re.search(r"^name: (.*)$", yaml_text, re.M).group(1)
        (fund / "fund.yaml").write_text(yaml_text.replace(f"name: {name}", f"name: '{EVIL_NAME}'", 1), encoding="utf-8")
        (fund / "payments" / "2021-03_补录.csv").write_text(
            "支付凭证号,预算单位,指标文号,支付金额,支付日期\n"
            f"BAD-0001,台山市市场监督管理局,江财工〔2021〕13号,{EVIL_VALUE},2021-03-10\n",
            encoding="utf-8",
        )
        db = f"sqlite:///{tmp / 'store.db'}"
        cfg = load_fund_config(fund)
        engine = store.open_store(db)
        for m in range(1, 8):
            month = f"2021-{m:02d}"
            try:
                load_month(fund, month, db, cfg=cfg)
            except MonthRejected:
                pass
            if m == 1:  # a unit whose name is markup (as a source database could hold it)
                with engine.begin() as conn:
                    conn.execute(
                        store.allocation.insert().values(
                            fund_code=CODE,
                            doc_no="X-1",
                            unit=EVIL_UNIT,
                            kind="年初",
                            date=date(2021, 1, 1),
                            amount_fen=1_000_000,
                        )
                    )
            close_month(fund, month, db, cfg=cfg, chart=False)
        # 核实反馈: 台山 answered Q2 (with markup in its words), 开平 not yet.
        from budget_monitor import approval, feedback

        feedback.ask(engine, CODE, 2021, [("台山市市场监督管理局", 2), ("开平市市场监督管理局", 2)])
        feedback.answer(
            engine,
            CODE,
            "台山市市场监督管理局",
            2021,
            2,
            cause=f"招标延期{EVIL_VALUE}",
            measures="8月底前付款",
            by="taishan",
        )
        approval.decide(engine, CODE, 2021, approval.REJECTED, by="approver", comment="十二月数据未到")
        reports = tmp / "reports"
        run_year_end(fund, 2021, reports / CODE / "2021", db, draft=True)
        yield {"db": db, "inbox": fund.parent, "reports": reports, "cfg": cfg}
        store.dispose_all()


@pytest.fixture
def client(site: dict):
    from budget_monitor import dashboard_data
    from budget_monitor_airflow.dashboard import create_app
    from fastapi.testclient import TestClient

    dashboard_data.clear_cache()
    app = create_app(db_url=lambda: site["db"], funds_root=lambda: site["inbox"], reports_root=lambda: site["reports"])
    app.dependency_overrides[app.state.access_dependency] = lambda: None  # logged in
    with TestClient(app) as c:
        yield c


def _pages(client) -> dict[str, str]:
    fund = client.get(f"/fund/{CODE}/").text
    units = re.findall(r"<a href='(unit\?name=[^']+)'>", fund)
    pages = {"/": client.get("/").text, f"/fund/{CODE}/": fund}
    for href in units:
        pages[f"/fund/{CODE}/{href}"] = client.get(f"/fund/{CODE}/{href.replace('&amp;', '&')}").text
    return pages


def _row(html_text: str, row_start: str) -> str:
    row = html_text[html_text.index(row_start) :]
    return row[: row.index("</tr>")]


def _field(html_text: str, row_start: str, field: str) -> str:
    return re.search(rf"data-field='{field}'>([^<]*)<", _row(html_text, row_start)).group(1)


def _light(severity: str | None) -> str:
    return "light light-" + {None: "green", "yellow": "yellow", "red": "red"}[severity] + "'"


def test_plugin_registers_the_dashboard_and_its_nav_link():
    from airflow import plugins_manager

    apps, _ = plugins_manager.get_fastapi_plugins()
    assert not plugins_manager.get_import_errors()
    assert [a["url_prefix"] for a in apps if a["name"] == "budget-monitor dashboard"] == ["/budget-dashboard"]
    from budget_monitor_plugin import BudgetMonitorPlugin

    nav = [v for v in BudgetMonitorPlugin.external_views if v["href"] == "/budget-dashboard/"]
    assert nav and nav[0]["destination"] == "nav" and "看板" in nav[0]["name"]


def test_api_server_serves_the_dashboard_to_a_logged_in_viewer_only(
    airflow_db, site: dict, monkeypatch: pytest.MonkeyPatch
):
    """Through Airflow's own api-server app and auth manager: anonymous 401; a
    Viewer's token (header or the UI's cookie) sees the page; the plugin list
    carries the nav link."""
    from airflow.api_fastapi.app import create_app, get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from budget_monitor import dashboard_data
    from fastapi.testclient import TestClient

    monkeypatch.setenv("BUDGET_MONITOR_DB_URL", site["db"])
    monkeypatch.setenv("BUDGET_MONITOR_FUNDS_DIR", str(site["inbox"]))
    monkeypatch.setenv("BUDGET_MONITOR_REPORTS_DIR", str(site["reports"]))
    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "dashboard-test-secret")
    dashboard_data.clear_cache()
    with TestClient(create_app()) as c:
        assert c.get("/budget-dashboard/").status_code == 401
        assert c.get(f"/budget-dashboard/fund/{CODE}/data.json").status_code == 401
        assert c.get("/budget-dashboard/static/dashboard.css").status_code == 401
        token = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="viewer", role="viewer"))
        page = c.get("/budget-dashboard/", headers={"Authorization": f"Bearer {token}"})
        assert page.status_code == 200 and "预算执行监控看板" in page.text and CODE in page.text
        assert c.get(f"/budget-dashboard/fund/{CODE}/", cookies={"_token": token}).status_code == 200
        plugins = c.get("/api/v2/plugins", headers={"Authorization": f"Bearer {token}"}).json()["plugins"]
        views = [v for p in plugins for v in p["external_views"]]
        assert any(v["href"] == "/budget-dashboard/" and v["destination"] == "nav" for v in views)


def test_every_figure_on_the_pages_equals_the_store(client, site: dict):
    from budget_monitor import store
    from budget_monitor.pipeline import compute

    expected = compute(store.open_store(site["db"]), site["cfg"], 7)
    pages = _pages(client)
    m = expected.fund.month(7)
    overview = pages["/"]
    row = f"data-code='{CODE}'"
    assert _field(overview, row, "rate") == f"{m.rate_2dp:.2f}%"
    assert _field(overview, row, "pace") == f"{m.pace_2dp:.2f}%"
    assert _field(overview, row, "gap") == f"{m.gap_2dp:.2f}"
    assert m.severity == "yellow" and _light(m.severity) in _row(overview, row)
    fund = pages[f"/fund/{CODE}/"]
    for month in expected.fund.months:
        start = f"data-month='2021-{month.month:02d}'"
        assert _field(fund, start, "rate") == f"{month.rate_2dp:.2f}%"
        assert _field(fund, start, "pace") == f"{month.pace_2dp:.2f}%"
        assert _field(fund, start, "gap") == f"{month.gap_2dp:.2f}"
        assert _light(month.severity) in _row(fund, start)
    for unit in expected.units:
        start = f"data-unit='{_escaped(unit.unit)}'"
        assert _field(fund, start, "rate") == f"{unit.latest.rate_2dp:.2f}%"
        assert _light(unit.latest.severity) in _row(fund, start)
        page = pages[f"/fund/{CODE}/unit?name={_escaped(quote(unit.unit, safe=''))}"]
        for month in unit.months:
            assert _field(page, f"data-month='2021-{month.month:02d}'", "rate") == (
                "—" if month.rate_2dp is None else f"{month.rate_2dp:.2f}%"
            )
    # The JSON behind the page is the data module's, figure for figure.
    data = client.get(f"/fund/{CODE}/data.json").json()
    assert [x["rate"] for x in data["series"]["months"]] == [f"{x.rate_2dp:.2f}" for x in expected.fund.months]
    with store.open_store(site["db"]).connect() as conn:
        subjects = list(
            conn.execute(
                store.outbox.select().with_only_columns(store.outbox.c.subject).where(store.outbox.c.fund_code == CODE)
            ).scalars()
        )
    assert sorted(a["subject"] for a in data["alerts"]) == sorted(subjects)
    assert "核实反馈" in fund and "（核实反馈功能尚未启用）" in fund
    assert fund.count("<svg class='chart'") == 1 and "<polyline class='pace'" in fund


def _escaped(text: str) -> str:
    import html

    return html.escape(text, quote=True)


def test_hostile_text_is_escaped_everywhere(client):
    pages = _pages(client)
    assert any(_escaped(EVIL_UNIT) in p for p in pages.values())
    for path, text in pages.items():
        for evil in (EVIL_NAME, EVIL_UNIT, EVIL_VALUE):
            assert evil not in text, (path, evil)
        assert "<script" not in text and "onerror=" not in text.replace("onerror=alert(2)&gt;", ""), path
    assert _escaped(EVIL_NAME) in pages["/"] and _escaped(EVIL_NAME) in pages[f"/fund/{CODE}/"]
    assert _escaped(EVIL_VALUE) in pages[f"/fund/{CODE}/"]  # the rejected file's reason
    unit = client.get(f"/fund/{CODE}/unit", params={"name": EVIL_UNIT})
    assert unit.status_code == 200 and EVIL_UNIT not in unit.text and _escaped(EVIL_UNIT) in unit.text


def test_no_page_needs_another_host(client):
    """Intranet: no CDN, no web font, no script; every link and asset is relative and served here."""
    pages = _pages(client)
    pages["/static/dashboard.css"] = css = client.get("/static/dashboard.css").text
    assert client.get("/static/dashboard.css").headers["content-type"].startswith("text/css")
    assert "url(" not in css and "@import" not in css
    for path, text in pages.items():
        assert "http://" not in text and "https://" not in text, path
        assert "<script" not in text and "@import" not in text, path
        for ref in re.findall(r"(?:src|href)='([^']*)'", text):
            assert not ref.startswith(("/", "//")) and ":" not in ref.split("?")[0], (path, ref)
    # The relative links resolve to pages of this app.
    fund = pages[f"/fund/{CODE}/"]
    for ref in re.findall(r"href='([^']*)'", fund):
        target = client.get(f"/fund/{CODE}/{ref.replace('&amp;', '&')}")
        assert target.status_code == 200, ref


def test_feedback_and_approval_are_shown(client):
    """The units' answers (核实反馈) and the approver's decision, as the store has them."""
    fund = client.get(f"/fund/{CODE}/").text
    rows = re.findall(r"<tr class='feedback'>(.*?)</tr>", fund)
    assert len(rows) == 2
    taishan = next(r for r in rows if "台山" in r)
    assert "已反馈" in taishan and "taishan" in taishan and "8月底前付款" in taishan
    assert _escaped(f"招标延期{EVIL_VALUE}") in taishan
    assert "待反馈" in next(r for r in rows if "开平" in r)
    assert "已被 approver" in fund and "退回（十二月数据未到）" in fund
    unit = client.get(f"/fund/{CODE}/unit", params={"name": "开平市市场监督管理局"}).text
    assert len(re.findall(r"<tr class='feedback'>", unit)) == 1


def test_units_without_a_contact_are_marked_as_forwarded_to_the_finance_office(client, site: dict):
    """contacts.csv: a unit with a contact shows it; one without shows 无联系人，已转财务科,
    on the fund page and on its own page; the mails were routed the same way."""
    from budget_monitor import store
    from budget_monitor.alerts import MONTH_WARNING
    from budget_monitor_airflow.dashboard import NO_CONTACT

    fund = client.get(f"/fund/{CODE}/").text
    cells = dict(re.findall(r"<tr class='unit' data-unit='([^']*)'>.*?data-field='contact'>([^<]*)<", fund))
    assert cells["台山市市场监督管理局"] == "李明 &lt;liming@scjgj.taishan.example.cn&gt;"
    assert cells["开平市市场监督管理局"].startswith("陈芳")
    assert cells["恩平市市场监督管理局"] == cells["江门市市场监督管理局"] == NO_CONTACT
    enping = client.get(f"/fund/{CODE}/unit", params={"name": "恩平市市场监督管理局"}).text
    assert NO_CONTACT in enping and "no-contact" in enping
    taishan = client.get(f"/fund/{CODE}/unit", params={"name": "台山市市场监督管理局"}).text
    assert NO_CONTACT not in taishan and "liming@scjgj.taishan.example.cn" in taishan
    assert client.get(f"/fund/{CODE}/unit.json", params={"name": "恩平市市场监督管理局"}).json()["contact"] == {
        "fallback": True,
        "contacts": [],
    }
    o = store.outbox.c
    with store.open_store(site["db"]).connect() as conn:
        routed = dict(
            conn.execute(
                store.outbox.select().with_only_columns(o.unit, o.recipients).where(o.kind == MONTH_WARNING)
            ).all()
        )
    assert routed["台山市市场监督管理局"].startswith("liming@scjgj.taishan.example.cn,caiwu@")
    assert (
        routed["恩平市市场监督管理局"]
        == routed[""]
        == "caiwu@scjgj.jiangmen.example.cn,yaojianke@scjgj.jiangmen.example.cn"
    )


def test_a_broken_contacts_file_is_said_on_the_page(client, site: dict):
    path = site["inbox"] / "contacts.csv"
    good = path.read_bytes()
    try:
        path.write_text("预算单位,电子邮箱\n台山市市场监督管理局,不是邮箱\n", encoding="utf-8")
        fund = client.get(f"/fund/{CODE}/")
        assert fund.status_code == 200
        assert "部门联系人表有误" in fund.text and "第2行 列“电子邮箱”" in fund.text
    finally:
        path.write_bytes(good)


def test_reports_download_and_refusals(client, site: dict):
    fund = client.get(f"/fund/{CODE}/").text
    assert "草稿" in fund
    links = re.findall(r"href='(report/[^']+)'", fund)
    names = {Path(site["reports"] / CODE / "2021" / p.split("/", 1)[1]).name for p in links}
    assert {quote("自评报告.docx", safe=""), quote("自评表.xlsx", safe="")} <= names
    docx = client.get(f"/fund/{CODE}/report/自评报告.docx")
    assert docx.status_code == 200
    assert docx.content == (site["reports"] / CODE / "2021" / "自评报告.docx").read_bytes()
    assert "attachment" in docx.headers["content-disposition"]
    for bad in ("..%2F..%2F..%2Fstore.db", "%2E%2E", "notes.txt", "missing.docx"):
        assert client.get(f"/fund/{CODE}/report/{bad}").status_code == 404, bad
    assert client.get("/fund/NO-SUCH/").status_code == 404
    assert client.get(f"/fund/{CODE}/unit", params={"name": "不存在的单位"}).status_code == 404
    assert client.get(f"/fund/{CODE}", follow_redirects=False).headers["location"] == f"{CODE}/"


def test_contact_names_and_a_broken_contacts_file_are_escaped_and_no_contact_is_marked():
    """contacts.csv text (联系人 is free text) and its error message reach the page as text."""
    from budget_monitor_airflow.dashboard import NO_CONTACT, _contact_cell, _contacts_notice

    breakout = "\"'><img src=x onerror=1>"
    people = {"fallback": False, "contacts": [{"name": f"{EVIL_VALUE}{breakout}", "email": "a@b.cn"}]}
    cell = _contact_cell(people)
    assert EVIL_VALUE not in cell and breakout not in cell and "<img" not in cell and "<script" not in cell
    assert _escaped(f"{EVIL_VALUE}{breakout}") in cell and "&lt;a@b.cn&gt;" in cell
    for fallback in (None, {"fallback": True, "contacts": []}):
        assert _contact_cell(fallback) == f"<td class='contact no-contact' data-field='contact'>{NO_CONTACT}</td>"
    notice = _contacts_notice({"contacts_error": f"contacts.csv: 第2行 列“电子邮箱”：“{EVIL_VALUE}{breakout}”"})
    assert EVIL_VALUE not in notice and breakout not in notice and _escaped(EVIL_VALUE) in notice
