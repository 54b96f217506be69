"""The treasury payment system's HTTP/JSON export as a source, against a real HTTP server."""

from __future__ import annotations

import json
import shutil
import socket
import time
from decimal import Decimal
from pathlib import Path

import pytest

from budget_monitor.config import HttpSourceSettings
from budget_monitor.intake import Endpoint, SourceError
from budget_monitor.intake import treasury
from budget_monitor.intake.files import fund_files
from budget_monitor.intake.treasury import TreasurySource
from treasury_server import Request, TreasuryServer, payment

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "jiangmen-2021"
FUND, MONTH = "JM-2021-YPJG", "2021-03"


@pytest.fixture
def server():
    srv = TreasuryServer(token="s3cret").start()
    yield srv
    srv.stop()


def _source(server: TreasuryServer, **kw) -> TreasurySource:
    return TreasurySource(server.url, kw.pop("token", "s3cret"), **kw)


def _serve(server: TreasuryServer, rows: list[dict], kind: str = "payments") -> None:
    server.records[(kind, FUND, MONTH)] = rows


def test_every_page_becomes_one_snapshot_with_exact_amounts(server: TreasuryServer, tmp_path: Path) -> None:
    rows = [
        payment("V5", "1,234.50", "2021-03-05", memo="办公费"),
        payment("V1", Decimal("0.10"), "2021-03-01"),
        payment("V3", 7, "2021-03-03", econ_class="30201"),
        payment("V2", "10.00", "2021-03-02", extra_field="kept"),
        payment("V4", "-5.00", "2021-03-04", kind="退回"),
    ]
    _serve(server, rows)
    pulled = _source(server, page_size=2).pull(FUND, MONTH, tmp_path)

    assert pulled.rows == {"payments": 5} and pulled.source == "http"
    (path,) = pulled.files
    assert path == tmp_path / "payments" / f"pulled_{FUND}_{MONTH}.csv"
    assert fund_files(tmp_path)["payments"] == [path]
    lines = path.read_text(encoding="utf-8").splitlines()
    # The contract's columns in contract order, then the others; rows in a fixed order.
    assert lines[0] == "voucher_no,unit,doc_no,amount,pay_date,kind,econ_class,memo,extra_field"
    assert [ln.split(",")[0] for ln in lines[1:]] == ["V1", "V2", "V3", "V4", "V5"]
    amounts = {ln.split(",")[0]: ln for ln in lines[1:]}
    assert "0.10" in amounts["V1"] and '"1,234.50"' in amounts["V5"] and ",7," in amounts["V3"]
    assert [q.query["page"] for q in server.requests] == ["1", "2", "3"]
    assert {q.query["page_size"] for q in server.requests} == {"2"}
    assert server.requests[0].headers["Authorization"] == "Bearer s3cret"


def test_pulling_twice_changes_nothing(server: TreasuryServer, tmp_path: Path) -> None:
    _serve(server, [payment("V2", "2.00", "2021-03-02"), payment("V1", "1.00", "2021-03-01")])
    (first,) = _source(server).pull(FUND, MONTH, tmp_path).files
    data, inode = first.read_bytes(), first.stat().st_ino
    server.records[("payments", FUND, MONTH)].reverse()  # another order from the server: the same bytes
    (again,) = _source(server).pull(FUND, MONTH, tmp_path).files
    assert again.read_bytes() == data and again.stat().st_ino == inode  # not even rewritten


def test_an_empty_month_writes_nothing(server: TreasuryServer, tmp_path: Path) -> None:
    pulled = _source(server).pull(FUND, MONTH, tmp_path)
    assert pulled.files == () and pulled.rows == {} and not (tmp_path / "payments").exists()


def test_settings_take_the_token_from_the_connection_else_the_environment(
    server: TreasuryServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = HttpSourceSettings(kind="http", token_env="TREASURY_TOKEN_FOR_TEST")
    with pytest.raises(SourceError, match="未配置地址"):
        TreasurySource.from_settings(settings)
    conn = {"budget_monitor_treasury": Endpoint(server.url, "s3cret")}
    src = TreasurySource.from_settings(settings, conn.get)
    assert (src.url, src.token) == (server.url, "s3cret") and "s3cret" not in repr(src)

    monkeypatch.setenv("TREASURY_TOKEN_FOR_TEST", "from-env")
    from_env = TreasurySource.from_settings(settings.model_copy(update={"url": server.url}))
    assert from_env.token == "from-env"
    with pytest.raises(SourceError, match="认证失败") as exc:
        from_env.pull(FUND, MONTH, tmp_path)
    assert FUND in str(exc.value) and "401" in str(exc.value)


@pytest.mark.parametrize(
    ("status", "words"),
    [(500, "服务器内部错误"), (403, "无权读取"), (404, "接口地址不存在"), (302, "重定向")],
)
def test_a_refusing_server_is_a_clear_error_and_writes_nothing(
    server: TreasuryServer, tmp_path: Path, status: int, words: str
) -> None:
    _serve(server, [payment("V1", "1.00", "2021-03-01")])
    server.fault = lambda req: (status, "text/plain", b"no")
    with pytest.raises(SourceError, match=words) as exc:
        _source(server).pull(FUND, MONTH, tmp_path)
    assert f"HTTP {status}" in str(exc.value) and f"{FUND} {MONTH}" in str(exc.value)
    assert list(tmp_path.iterdir()) == []


def test_a_server_that_does_not_answer_in_time(server: TreasuryServer, tmp_path: Path) -> None:
    def slow(req: Request):
        time.sleep(2)
        return None

    server.fault = slow
    with pytest.raises(SourceError, match="超时（超过 0.2 秒未响应）"):
        _source(server, timeout_s=0.2).pull(FUND, MONTH, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_nobody_listening(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(SourceError, match="连接失败"):
        TreasurySource(f"http://127.0.0.1:{port}/x").pull(FUND, MONTH, tmp_path)


def _envelope(**over) -> bytes:
    body = {
        "fund_code": FUND,
        "month": MONTH,
        "page": 1,
        "pages": 1,
        "total": 1,
        "records": [payment("V1", "1", "2021-03-01")],
    }
    body.update(over)
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


@pytest.mark.parametrize(
    ("ctype", "body", "words"),
    [
        ("text/html", "<html>请登录</html>".encode(), "返回的不是 JSON（Content-Type: text/html）"),
        ("application/json", b"{not json", "不是有效的 JSON"),
        ("application/json", b"[]", "最外层应为 JSON 对象"),
        ("application/json", _envelope(month="2021-04"), "字段 month 应为 '2021-03'"),
        ("application/json", _envelope(fund_code="OTHER"), "字段 fund_code"),
        ("application/json", _envelope(total=3), "各页记录合计 1 条，与声明的总数 3 条不符"),
        ("application/json", _envelope(pages=0), "字段 pages 应在 1 到"),
        ("application/json", _envelope(total="1"), "字段 total 应为非负整数"),
        ("application/json", _envelope(records={"V1": 1}), "缺少 records 列表"),
        ("application/json", _envelope(records=["V1"]), "第1条记录不是 JSON 对象"),
        (
            "application/json",
            _envelope(records=[{"voucher_no": {"x": 1}}]),
            "第1条记录的字段 voucher_no 不是文本或数字",
        ),
    ],
)
def test_a_body_that_breaks_the_contract_is_kept_in_quarantine(
    server: TreasuryServer, tmp_path: Path, ctype: str, body: bytes, words: str
) -> None:
    server.fault = lambda req: (200, ctype, body)
    with pytest.raises(SourceError) as exc:
        _source(server).pull(FUND, MONTH, tmp_path)
    text = str(exc.value)
    assert words in text and "不符合接口约定" in text and "隔离区" in text, text
    (kept,) = [p for p in (tmp_path / "quarantine").iterdir() if not p.name.endswith(".report.json")]
    assert kept.read_bytes() == body and kept.name.endswith(f"http_payments_{MONTH}_p1.json")
    report = json.loads(kept.with_name(kept.name + ".report.json").read_text(encoding="utf-8"))
    assert words in report["reason"] and report["file"] == f"http_payments_{MONTH}_p1.json"
    assert not (tmp_path / "payments").exists()  # nothing of the month was written


def test_pages_that_change_while_paging(server: TreasuryServer, tmp_path: Path) -> None:
    _serve(server, [payment(f"V{i}", "1", "2021-03-01") for i in range(3)])

    def growing(req: Request):
        if req.query["page"] == "2":  # a record arrived between the two pages
            server.records[("payments", FUND, MONTH)].append(payment("V9", "1", "2021-03-09"))
        return None

    server.fault = growing
    with pytest.raises(SourceError, match="分页过程中总数发生变化"):
        _source(server, page_size=2).pull(FUND, MONTH, tmp_path)


def test_a_page_over_the_size_limit_is_refused_unread(
    server: TreasuryServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _serve(server, [payment(f"V{i}", "1", "2021-03-01", memo="x" * 100) for i in range(50)])
    monkeypatch.setattr(treasury, "MAX_PAGE_BYTES", 1024)
    with pytest.raises(SourceError, match="单页超过"):
        _source(server).pull(FUND, MONTH, tmp_path)


def test_a_bad_amount_is_rejected_by_the_loader_like_a_dropped_file(server: TreasuryServer, tmp_path: Path) -> None:
    """The transport is fine, a value is not: the snapshot is validated, quarantined and
    reported to the finance office with file, row, column and value, as any bad file."""
    from budget_monitor.pipeline import MonthRejected, load_month

    fund = tmp_path / "fund"
    fund.mkdir()
    for name in ("fund.yaml", "budget.csv", "goals.csv"):
        shutil.copy(EXAMPLE / name, fund / name)
    _serve(
        server,
        [payment("440700ZF202100001", "壹仟元", "2021-03-01"), payment("440700ZF202100002", "5.00", "2021-03-02")],
    )
    (path,) = _source(server).pull(FUND, MONTH, fund).files
    with pytest.raises(MonthRejected) as exc:
        load_month(fund, MONTH, f"sqlite:///{tmp_path / 'store.db'}")
    reason = exc.value.reason
    assert path.name in reason and "壹仟元" in reason and "第2行" in reason, reason
    assert not path.exists() and list((fund / "quarantine").glob(f"*{path.name}.report.json"))


def test_the_cli_pulls_from_the_funds_own_source(
    server: TreasuryServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    import yaml

    from budget_monitor.cli import EXIT_INFRA, EXIT_OK, main

    fund = tmp_path / "fund"
    fund.mkdir()
    cfg = yaml.safe_load((EXAMPLE / "fund.yaml").read_text(encoding="utf-8"))
    cfg["source"] = {"kind": "http", "url": server.url, "token_env": "TREASURY_TOKEN_FOR_TEST"}
    (fund / "fund.yaml").write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    _serve(server, [payment("V1", "1.00", "2021-03-01")])
    monkeypatch.setenv("TREASURY_TOKEN_FOR_TEST", "s3cret")
    monkeypatch.setenv("BUDGET_MONITOR_HOME", str(tmp_path / "home"))  # the CLI's log file
    assert main(["pull", str(fund), "--month", MONTH]) == EXIT_OK
    assert capsys.readouterr().out.strip() == str(fund / "payments" / f"pulled_{FUND}_{MONTH}.csv")

    monkeypatch.setenv("TREASURY_TOKEN_FOR_TEST", "wrong")
    assert main(["pull", str(fund), "--month", MONTH]) == EXIT_INFRA
    err = capsys.readouterr().err
    assert err.startswith("运行失败：未能从数据来源拉取本月数据：") and "认证失败" in err and "wrong" not in err
