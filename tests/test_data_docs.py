"""Data Docs (validation/docs.py): Chinese pages of the rules and of every
validation, that load nothing from outside (a government intranet has no
CDN), recorded by the load and linked from the rejection notice."""

from __future__ import annotations

import email
import email.policy
import html
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest

from budget_monitor.validation import docs
from budget_monitor.validation.rules import load_rules, rules_for

from ingest_fixtures import PAY_HEADER, good_payments, payment, validation_fund, write_csv

REPO = Path(__file__).resolve().parents[1]
JIANGMEN = REPO / "examples" / "jiangmen-2021"
EXTERNAL = re.compile(r"^\s*(?:[a-z][a-z0-9+.-]*:|//)", re.IGNORECASE)  # http:, https:, //host, data:...
CSS_URL = re.compile(r"""url\(\s*['"]?([^'")]+)|@import\s+['"]([^'"]+)""", re.IGNORECASE)


class _Assets(HTMLParser):
    """What a page makes a browser load: scripts, stylesheets, fonts, images, frames."""

    def __init__(self) -> None:
        super().__init__()
        self.loads: list[str] = []
        self.scripts = 0
        self.links: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "script":
            self.scripts += 1
        if tag in ("script", "img", "iframe", "embed", "source", "audio", "video", "input") and "src" in a:
            self.loads.append(a["src"])
        if tag == "link":
            self.loads.append(a.get("href", ""))
        if tag == "object" and "data" in a:
            self.loads.append(a["data"])
        if tag == "a":
            self.links.append(a.get("href", ""))
        if "style" in a:
            self.loads += [u or i for u, i in CSS_URL.findall(a["style"])]
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.loads += [u or i for u, i in CSS_URL.findall(data)]


def _assets(page: Path) -> _Assets:
    parser = _Assets()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def _text(page: Path) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", page.read_text(encoding="utf-8")))


def assert_offline(site: Path) -> list[Path]:
    """Every page of ``site`` loads nothing (no script at all, no stylesheet,
    font or image from anywhere) and links only inside the site."""
    pages = sorted(site.rglob("*.html"))
    assert pages
    for page in pages:
        found = _assets(page)
        assert found.scripts == 0, page
        assert found.loads == [], (page, found.loads)
        outside = [h for h in found.links if EXTERNAL.match(h)]
        assert outside == [], (page, outside)
    return pages


@pytest.fixture
def fund(tmp_path: Path) -> Path:
    (tmp_path / "T-2021").mkdir()
    return validation_fund(tmp_path / "T-2021", "gbk", "utf-8-sig")


def test_data_docs_pages_load_nothing_from_outside_and_describe_every_rule(fund: Path, tmp_path: Path) -> None:
    write_csv(fund / "payments" / "2021-03_支出明细.csv", PAY_HEADER, good_payments())
    write_csv(fund / "payments" / "2021-04_支出明细.csv", PAY_HEADER, [payment("V1", "壹仟元"), payment("V2")])
    index = docs.build_data_docs(tmp_path / "out", fund_dir=fund)
    site = index.parent
    pages = assert_offline(site)
    assert {p.relative_to(site).parts[0] for p in pages} == {"index.html", "rules.html", "validations"}

    # The rules page describes every rule in Chinese, from the rules table.
    rules_text = _text(site / "rules.html")
    for r in load_rules():
        assert r.rule_id in rules_text
        assert docs.describe(r) in rules_text, r.rule_id
    assert "“支付金额”应为可识别的金额" in rules_text
    assert "“预算单位”不超过数据库该列的长度上限（200 个字符）" in rules_text  # {max_length} from the store
    assert "{header}" not in rules_text and "{max_length}" not in rules_text

    # One page per validated file; the bad one shows its failing row and every payments rule.
    (bad,) = (site / "validations" / "payments").glob("*2021-04_支出明细.csv.html")
    (good,) = (site / "validations" / "payments").glob("*2021-03_支出明细.csv.html")
    bad_text, good_text = _text(bad), _text(good)
    for r in rules_for("payments"):
        assert docs.describe(r) in bad_text and docs.describe(r) in good_text
    assert "未通过校验，已整份退回" in bad_text and "壹仟元" in bad_text and "第2行" in bad_text
    assert "通过校验，已入库" in good_text and "未通过" not in good_text
    assert re.search(r"PAY-002.*?未通过", bad_text, re.S)
    # The index lists both, links them, and is in Chinese.
    index_text = _text(index)
    assert "2021-04_支出明细.csv" in index_text and "数据校验记录" in index_text
    assert {Path(unquote(h)).name for h in _assets(index).links} >= {bad.name, good.name, "rules.html"}


def test_a_multi_column_rule_names_its_columns_together() -> None:
    pay001 = next(r for r in load_rules() if r.rule_id == "PAY-001")
    assert docs.describe(pay001) == "“支付凭证号”、“预算单位”、“指标文号”、“支付金额”、“支付日期”为必填项，不能为空"


def test_an_unreadable_file_page_says_the_suite_did_not_judge_it(fund: Path, tmp_path: Path) -> None:
    from budget_monitor.ingest import IngestError
    from budget_monitor.validate import report_for_ingest_error

    path = fund / "payments" / "2021-05_支出明细.csv"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(b"\xff\xfe\x00garbage")
    report = report_for_ingest_error(IngestError("x: 编码无法识别", path=path, rule_id="ING-001"), "payments")
    page_id = "20210405T060000_abcd1234_2021-05_支出明细.csv"
    docs.record(fund, report, outcome="rejected", page=page_id, fund_code="T", fund_title="测试")
    docs.build_site(fund)
    (page,) = (fund / "data_docs" / "validations" / "payments").glob("*.html")
    text = _text(page)
    assert re.search(r"ING-001.*?未通过", text, re.S) and "未判定" in text
    statuses = {c["rule_id"]: c["status"] for c in docs._checks(report.to_dict())}
    assert statuses.pop("ING-001") == "failed" and set(statuses.values()) == {"not_run"}
    assert_offline(fund / "data_docs")


def test_build_site_renders_new_results_and_keeps_the_others(fund: Path) -> None:
    from budget_monitor.validate import ValidationReport

    report = ValidationReport("payments/a.csv", "/x/a.csv", "payments", "ab" * 32, 3)
    docs.record(fund, report, outcome="loaded", page="p1", fund_code="T-2021", fund_title="测试专项资金")
    index = docs.build_site(fund)
    page = fund / "data_docs" / docs.page_path("payments", "p1")
    assert page.is_file() and "测试专项资金" in _text(index)
    page.write_text("kept", encoding="utf-8")
    docs.build_site(fund)
    assert page.read_text(encoding="utf-8") == "kept"  # up to date: not rendered again
    docs.build_site(fund, rebuild=True)
    assert "数据校验报告" in page.read_text(encoding="utf-8")


def test_page_url_is_under_the_deployments_docs_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(docs.DOCS_URL_ENV, raising=False)
    assert docs.page_url("jm", "payments", "x") is None
    monkeypatch.setenv(docs.DOCS_URL_ENV, "http://airflow.intranet:8080/budget-monitor/docs/")
    url = docs.page_url("江门 2021", "payments", "20210405T060000_ab12cd34_a b.csv")
    assert url == (
        "http://airflow.intranet:8080/budget-monitor/docs/%E6%B1%9F%E9%97%A8%202021/"
        "validations/payments/20210405T060000_ab12cd34_a%20b.csv.html"
    )


def test_the_load_records_each_validation_and_the_notice_links_its_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from budget_monitor import outbox, store
    from budget_monitor.pipeline import MonthRejected, load_month

    monkeypatch.setenv(docs.DOCS_URL_ENV, "http://airflow.intranet/budget-monitor/docs")
    db = f"sqlite:///{tmp_path / 's.db'}"
    fund = tmp_path / JIANGMEN.name
    shutil.copytree(JIANGMEN, fund)
    (fund / "payments" / "2021-01_补录.csv").write_text(
        "支付凭证号,预算单位,指标文号,支付金额,支付日期\nBAD-0001,台山市市场监督管理局,江财工〔2021〕13号,壹仟元,2021-01-11\n",
        encoding="utf-8",
    )
    with pytest.raises(MonthRejected):
        load_month(fund, "2021-01", db)
    results = sorted((fund / "data_docs" / "results").rglob("*.json"))
    outcomes = {json.loads(p.read_text(encoding="utf-8"))["report"]["file"]: p for p in results}
    assert "payments/2021-01_补录.csv" in outcomes and "budget.csv" in outcomes and "goals.csv" in outcomes
    (quarantined,) = (fund / "quarantine").glob("*2021-01_补录.csv")
    rejected = json.loads(outcomes["payments/2021-01_补录.csv"].read_text(encoding="utf-8"))
    assert rejected["outcome"] == "rejected" and rejected["page"] == quarantined.name

    docs.build_site(fund)
    assert_offline(fund / "data_docs")
    page = fund / "data_docs" / docs.page_path("payments", quarantined.name)
    assert "壹仟元" in _text(page)

    # The notice links exactly that page.
    got = []

    class Mailer:
        def send(self, msg) -> None:
            got.append(msg)

    outbox.flush(store.open_store(db), Mailer(), "JM-2021-YPJG")
    (wire,) = [m for m in got if str(m["Subject"]).startswith("【数据退回】")]
    notice = email.message_from_bytes(wire.as_bytes(), policy=email.policy.default)
    text = notice.get_body(preferencelist=("plain",)).get_content()
    url = docs.page_url(fund.name, "payments", quarantined.name)
    assert url and url in text and "数据校验报告" in text
    assert url.replace("&", "&amp;") in notice.get_body(preferencelist=("html",)).get_content()


def test_a_rule_not_run_says_in_chinese_what_it_lacked(fund: Path) -> None:
    from budget_monitor.validate import ValidationReport

    report = ValidationReport("budget.csv", "/x/budget.csv", "budget", "cd" * 32, 4)
    report.skipped = ["BUD-009（缺少上下文：paid_by_unit）"]
    checks = {c["rule_id"]: c for c in docs._checks(report.to_dict())}
    assert checks["BUD-009"]["status"] == "skipped" and checks["BUD-009"]["note"] == "缺少已入库的支付"
    assert checks["BUD-001"]["status"] == "passed"


def test_cli_data_docs_validates_a_fund_directory_into_an_offline_site(tmp_path: Path, capsys) -> None:
    from budget_monitor.cli import main

    fund = tmp_path / JIANGMEN.name
    shutil.copytree(JIANGMEN, fund)
    assert main(["data-docs", str(fund), "--out", str(tmp_path / "out")]) == 0
    index = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert index == tmp_path / "out" / "data_docs" / "index.html"
    pages = assert_offline(index.parent)
    assert len([p for p in pages if "validations" in p.parts]) == len(list(fund.rglob("*.csv"))) + len(
        list(fund.rglob("*.xlsx"))
    )
    assert "药品监督管理" in _text(index) and not (fund / "data_docs").exists()


SCRIPT = "<script>alert(1)</script>"
BREAKOUT = "\"'><img src=x onerror=1>"


def test_hostile_file_names_and_cell_values_are_escaped_on_every_page(fund: Path, tmp_path: Path) -> None:
    from markupsafe import escape

    name = f"2021-04_{BREAKOUT}.csv"  # a file name may hold markup ("/" aside)
    write_csv(fund / "payments" / name, PAY_HEADER, [payment("V1", SCRIPT), payment("V2", "=HYPERLINK(1)")])
    index = docs.build_data_docs(tmp_path / "out", fund_dir=fund)
    pages = assert_offline(index.parent)
    (page,) = (index.parent / "validations" / "payments").glob("*2021-04_*.html")
    raw = {p: p.read_text(encoding="utf-8") for p in pages}
    for path, text in raw.items():
        assert SCRIPT not in text and BREAKOUT not in text and "<img" not in text, path
    assert str(escape(BREAKOUT)) in raw[index] and str(escape(BREAKOUT)) in raw[page]
    assert str(escape(SCRIPT)) in raw[page]  # the failing cell, shown as text
    assert name in _text(page) and SCRIPT in _text(page)  # a reader sees them as written
    # The index links the page by a quoted href that stays one attribute.
    (href,) = [h for h in _assets(index).links if Path(unquote(h)).name == page.name]
    assert not set("\"'<> ") & set(href)


def test_a_recorded_result_with_hostile_text_renders_escaped(fund: Path) -> None:
    from budget_monitor.validate import ValidationReport
    from budget_monitor.validation.report import Failure

    evil = f"{SCRIPT}{BREAKOUT}"
    failure = Failure("PAY-002", "error", "format", "amount", evil, 2, evil, f"第2行 {evil}\r\nBcc: x")
    report = ValidationReport(f"payments/{BREAKOUT}.csv", "/x/a.csv", "payments", "ab" * 32, 1, [failure])
    docs.record(fund, report, outcome="rejected", page="p1", fund_code="T-2021", fund_title=evil)
    docs.build_site(fund, title=evil)
    for page in (fund / "data_docs").rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        assert evil not in text and SCRIPT not in text and "<img" not in text, page
    html_page = next((fund / "data_docs" / "validations").rglob("*.html")).read_text(encoding="utf-8")
    assert html_page.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 4  # title, header, value, message
    assert "\r\nBcc" not in html_page and "\\r\\nBcc" in html_page  # the message stays one line
