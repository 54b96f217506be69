"""Large CSVs read in chunks (issue #13 item 11): the same decision as a whole read.

Every test loads the same fund twice, into one store under two fund codes:
once with the file streamed (threshold 1 byte, chunks of CHUNK rows) and once
read whole (threshold out of reach), and compares what a finance office and
the store see: the store snapshot (and audit trail), the LoadResult, and for a
rejected file its quarantine report (failures, counts, first reason). Each
case also checks the outcome itself, so that both paths are not equally wrong.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from budget_monitor import ingest, pipeline, store, validate
from budget_monitor.pipeline import LoadResult, load_month, load_months

CHUNK = 400
ROWS = 2_000  # 5 chunks
HEADER = ["支付凭证号", "预算单位", "指标文号", "支付金额", "支付日期", "业务类型", "经济分类", "摘要"]
UNITS = [
    ("江门市市场监督管理局", "江财工〔2021〕12号"),
    ("台山市市场监督管理局", "江财工〔2021〕13号"),
    ("开平市市场监督管理局", "江财工〔2021〕14号"),
]
BUDGET_YUAN = 1_000_000  # the fund's whole budget, split over the three units
NAME = "payments/2021-03_支出明细.csv"


def _row(
    i: int, amount: str = "100.00", *, voucher: str | None = None, kind: str = "支付", date: str | None = None
) -> list[str]:
    unit, doc = UNITS[i % len(UNITS)]
    day = date or f"2021-{1 + i % 3:02d}-{1 + i % 28:02d}"
    return [
        f"V{i:06d}" if voucher is None else voucher,
        unit,
        doc,
        amount,
        day,
        kind,
        "30201 办公费",
        f"第{i}笔 办公用品",
    ]


def payments(
    n: int = ROWS,
    changes: dict[int, list[str]] | None = None,
    *,
    amount: str = "100.00",
    extra: Sequence[list[str]] = (),
) -> list[list[str]]:
    """``n`` good payments of ``amount`` (100 元: 200,000 元 for 2,000 rows); ``changes``
    replaces rows by index (0 = the file's row 2); ``extra`` rows are appended."""
    rows = [_row(i, amount) for i in range(n)]
    for i, r in (changes or {}).items():
        rows[i] = r
    return [*rows, *extra]


def write_csv(
    path: Path, rows: Sequence[Sequence[str]], encoding: str = "utf-8", *, blank_lines: Sequence[int] = ()
) -> Path:
    """A CSV with CRLF line ends; ``blank_lines`` inserts an empty line and a
    line of commas before those data-row indexes (blank lines are not rows)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(HEADER)
    for i, r in enumerate(rows):
        if i in blank_lines:
            buf.write("\r\n")
            buf.write("," * (len(HEADER) - 1) + "\r\n")
        w.writerow(r)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue().encode(encoding))
    return path


def make_fund(root: Path, code: str) -> Path:
    fund = root / code
    fund.mkdir(parents=True)
    (fund / "fund.yaml").write_text(
        f"code: {code}\nname: 2021年测试专项资金\nyear: 2021\ndepartment: 江门市市场监督管理局\n"
        "recipients:\n- caiwu@example.gov.cn\n",
        encoding="utf-8",
    )
    share = BUDGET_YUAN // len(UNITS)
    amounts = [share, share, BUDGET_YUAN - 2 * share]
    lines = ["指标文号,预算单位,下达日期,金额,类型"]
    lines += [f"{doc},{unit},2021-01-04,{yuan}.00,年初" for (unit, doc), yuan in zip(UNITS, amounts, strict=True)]
    (fund / "budget.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return fund


class Twins:
    """The same fund as STREAMED (chunks) and WHOLE (read_table), in one store."""

    def __init__(self, root: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
        self.db_url, self.mp = db_url, monkeypatch
        self.funds = {"STREAMED": make_fund(root, "STREAMED"), "WHOLE": make_fund(root, "WHOLE")}
        self.engine = store.open_store(db_url)
        monkeypatch.setenv("BUDGET_MONITOR_STREAM_CHUNK_ROWS", str(CHUNK))

    def write(self, name: str, rows: Sequence[Sequence[str]], encoding: str = "utf-8", **kw: Any) -> None:
        for fund in self.funds.values():
            write_csv(fund / name, rows, encoding, **kw)

    def load(self, month: str = "2021-03") -> dict[str, LoadResult]:
        out = {}
        for code, fund in self.funds.items():
            self.mp.setenv("BUDGET_MONITOR_STREAM_BYTES", "1" if code == "STREAMED" else str(1 << 40))
            out[code] = load_month(fund, month, self.db_url, raise_on_reject=False)
        return out

    def reports(self) -> dict[str, list[dict[str, Any]]]:
        out = {}
        for code, fund in self.funds.items():
            found = sorted((fund / "quarantine").glob("*.report.json")) if (fund / "quarantine").is_dir() else []
            out[code] = [json.loads(p.read_text(encoding="utf-8")) for p in found]
            for r in out[code]:
                for key in ("path", "original_path", "quarantined_as", "rejected_at"):
                    r.pop(key)  # the fund directory and the clock differ
        return out

    def same(self, results: dict[str, LoadResult]) -> LoadResult:
        """Both funds ended alike; the streamed fund's result."""
        s, w = results["STREAMED"], results["WHOLE"]
        assert [vars(f) for f in s.files] == [vars(f) for f in w.files]
        assert s.counts == w.counts
        assert store.snapshot(self.engine, "STREAMED") == store.snapshot(self.engine, "WHOLE")
        audit = {
            code: [
                (a["table_name"], a["row_key"], a["column_name"], a["old_value"], a["new_value"])
                for a in store.read_audit(self.engine, code)
            ]
            for code in self.funds
        }
        assert audit["STREAMED"] == audit["WHOLE"]
        reports = self.reports()
        assert reports["STREAMED"] == reports["WHOLE"]
        return s


@pytest.fixture
def twins(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Twins:
    t = Twins(tmp_path, db_url, monkeypatch)
    t.load()  # the budgets
    return t


def _outcome(result: LoadResult) -> tuple[str, int]:
    (f,) = [f for f in result.files if f.kind == "payments"]
    return f.status, f.rows


def _report(t: Twins) -> dict[str, Any]:
    (report,) = t.reports()["STREAMED"]
    return report


def _paid(t: Twins, code: str = "STREAMED") -> int:
    return store.net_paid_fen(t.engine, code)


@pytest.mark.parametrize("encoding", ["utf-8", "gbk", "utf-8-sig"])
def test_good_file_lands_the_same_whole_or_in_chunks(
    twins: Twins, encoding: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[int] = []
    runs: list[int] = []
    real_add, real_passed = validate.ChunkVerdicts.add, validate.ChunkVerdicts.passed

    def add(self: Any, table: Any, ctx: Any) -> None:
        seen.append(table.n_rows)
        real_add(self, table, ctx)

    def passed(self: Any) -> bool:
        runs.append(self.rows)
        return real_passed(self)

    monkeypatch.setattr(validate.ChunkVerdicts, "add", add)
    monkeypatch.setattr(validate.ChunkVerdicts, "passed", passed)
    rows = payments(changes={1500: _row(1500, "-50.00", kind="退回")})
    twins.write(NAME, rows, encoding, blank_lines=(0, 399, 400, 1999))
    res = twins.same(twins.load())
    assert _outcome(res) == ("loaded", ROWS)
    assert _paid(twins) == (ROWS - 1) * 10_000 - 5_000
    # Streamed in chunks of CHUNK records (blank lines are records, not rows),
    # all of them judged by one Great Expectations run.
    assert len(seen) == 6 and max(seen) <= CHUNK and sum(seen) == ROWS
    assert runs == [ROWS]
    enc = {"utf-8": "utf-8", "gbk": "gb18030", "utf-8-sig": "utf-8-sig"}[encoding]
    with twins.engine.connect() as conn:
        files = conn.execute(store.source_file.select().where(store.source_file.c.kind == "payments")).mappings().all()
    assert {(f["fund_code"], f["rows"], f["encoding"], f["archive_path"] is not None) for f in files} == {
        ("STREAMED", ROWS, enc, True),
        ("WHOLE", ROWS, enc, True),
    }


def test_bad_row_in_the_last_chunk_rejects_the_file_and_nothing_lands(twins: Twins) -> None:
    twins.write(NAME, payments(changes={ROWS - 2: _row(ROWS - 2, "壹仟元")}))
    res = twins.same(twins.load())
    assert _outcome(res) == ("rejected", ROWS)
    assert _paid(twins) == 0 and store.snapshot(twins.engine, "STREAMED")["payments"] == []
    report = _report(twins)
    assert report["counts"] == {"PAY-002": 1}
    assert report["failures"][0]["row"] == ROWS and "壹仟元" in report["reason"]
    assert not (twins.funds["STREAMED"] / NAME).exists()


def test_many_bad_rows_across_chunks_are_listed_and_counted_as_in_a_whole_read(twins: Twins) -> None:
    """More failing rows than MAX_ROWS_PER_RULE, spread over every chunk, on two rules."""
    changes = {i: _row(i, "abc") for i in range(5, ROWS, 37)}
    changes.update({i: _row(i, voucher="") for i in range(13, ROWS, 401)})
    twins.write(NAME, payments(changes=changes))
    twins.same(twins.load())
    report = _report(twins)
    assert report["counts"]["PAY-002"] == len(range(5, ROWS, 37)) > validate.MAX_ROWS_PER_RULE
    assert len([f for f in report["failures"] if f["rule_id"] == "PAY-002"]) == validate.MAX_ROWS_PER_RULE
    assert report["counts"]["PAY-001"] == len(range(13, ROWS, 401))
    assert "另有" in report["reason"]


def test_voucher_repeated_in_another_chunk_fails_both_rows(twins: Twins) -> None:
    twins.write(NAME, payments(changes={1900: _row(1900, voucher="V000007")}))
    res = twins.same(twins.load())
    assert _outcome(res) == ("rejected", ROWS)
    report = _report(twins)
    assert report["counts"] == {"PAY-010": 2}
    assert [f["row"] for f in report["failures"]] == [9, 1902]
    assert _paid(twins) == 0


def test_over_budget_crossing_in_a_later_chunk_names_its_row(twins: Twins) -> None:
    # 1,999 x 100 元 + 900,000 元 at row 1,602: the running total passes 1,000,000 元 there.
    twins.write(NAME, payments(changes={1600: _row(1600, "900000.00")}))
    res = twins.same(twins.load())
    assert _outcome(res) == ("rejected", ROWS)
    report = _report(twins)
    assert report["counts"] == {"PAY-011": 1}
    (fail,) = report["failures"]
    assert fail["row"] == 1602
    assert "本文件截至本行 1060000.00 元" in fail["message"] and "本文件合计 1099900.00 元" in fail["message"]
    assert _paid(twins) == 0


def test_refund_in_a_later_chunk_brings_the_file_back_under_budget(twins: Twins) -> None:
    changes = {1000: _row(1000, "900000.00"), 1900: _row(1900, "-300000.00", kind="退回")}
    twins.write(NAME, payments(changes=changes))
    res = twins.same(twins.load())
    assert _outcome(res) == ("loaded", ROWS)
    assert _paid(twins) == (ROWS - 2) * 10_000 + 60_000_000


def test_corrected_file_replaces_stored_vouchers_counted_once(twins: Twins) -> None:
    """A corrected re-send replaces every stored voucher (450 元 each instead of
    100): 900,000 元 is within the 1,000,000 元 budget only if the stored
    200,000 元 it replaces is left out of the cumulative check; every change
    is audited."""
    twins.write("payments/2021-02_支出明细.csv", payments())
    twins.same(twins.load())
    assert _paid(twins) == ROWS * 10_000
    twins.write("payments/2021-03_更正.csv", payments(amount="450.00"))
    res = twins.same(twins.load())
    (fix,) = [f for f in res.files if f.name.endswith("更正.csv")]
    assert (fix.status, fix.rows, fix.replaced) == ("loaded", ROWS, ROWS)
    assert _paid(twins) == ROWS * 45_000
    assert len(store.read_audit(twins.engine, "STREAMED")) == ROWS


def test_stored_voucher_repeated_across_chunks_is_left_out_once(twins: Twins) -> None:
    """The over-budget message's stored total when a replaced voucher occurs in
    two chunks (the streamed path subtracts its stored amount once, as a whole read)."""
    twins.write("payments/2021-02_支出明细.csv", payments())
    twins.same(twins.load())
    rows = payments(amount="505.00", extra=[_row(5, "505.00")])  # 1,010,505 元, V000005 twice
    twins.write("payments/2021-03_更正.csv", rows)
    twins.same(twins.load())
    report = _report(twins)
    assert report["counts"] == {"PAY-010": 2, "PAY-011": 1}
    (over,) = [f for f in report["failures"] if f["rule_id"] == "PAY-011"]
    assert "已入库 0.00 元" in over["message"]
    assert _paid(twins) == ROWS * 10_000


def test_inspection_sample_repeated_in_another_chunk_fails_both_rows(twins: Twins) -> None:
    """INS-003 (unique sample numbers) over chunks, beside row rules (INS-005, the INS-007 warning)."""
    header = ["抽样单号", "抽样日期", "品种类别", "抽检单位", "检验结论"]
    rows = [
        [f"YP{i:06d}", f"2021-{1 + i % 3:02d}-{1 + i % 28:02d}", "药品", UNITS[i % 3][0], "合格"] for i in range(ROWS)
    ]
    rows[1950][0] = "YP000003"
    rows[1500][4] = "合 格?"
    rows[700][3] = "恩平市市场监督管理局"  # not a budget unit: a warning only
    for fund in twins.funds.values():
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows([header, *rows])
        (fund / "inspections").mkdir()
        (fund / "inspections" / "2021-Q1_抽检记录.csv").write_text(buf.getvalue(), encoding="utf-8")
    res = twins.same(twins.load())
    (f,) = [f for f in res.files if f.kind == "inspections"]
    assert (f.status, f.rows) == ("rejected", ROWS)
    report = _report(twins)
    assert report["counts"] == {"INS-003": 2, "INS-005": 1, "INS-007": 1}
    assert [x["row"] for x in report["failures"] if x["rule_id"] == "INS-003"] == [5, 1952]
    assert [x["row"] for x in report["warnings"]] == [702]


def test_file_with_a_later_month_waits_with_its_row_count(twins: Twins) -> None:
    twins.write(NAME, payments(changes={1700: _row(1700, date="2021-05-02")}), blank_lines=(3,))
    res = twins.same(twins.load())
    (f,) = [f for f in res.files if f.kind == "payments"]
    assert (f.status, f.rows) == ("deferred", ROWS) and "2021-05" in f.reason
    assert _paid(twins) == 0


def test_malformed_row_in_a_later_chunk_is_the_whole_files_format_error(twins: Twins) -> None:
    twins.write(NAME, payments(changes={1500: [*_row(1500), "多余字段"]}))
    res = twins.same(twins.load())
    assert _outcome(res) == ("rejected", 0)
    report = _report(twins)
    assert report["counts"] == {"ING-002": 1} and "第1502行有 9 个字段，表头只有 8 列" in report["reason"]
    assert _paid(twins) == 0


def test_header_error_is_reported_as_in_a_whole_read(twins: Twins) -> None:
    rows = payments()
    for fund in twins.funds.values():
        path = write_csv(fund / NAME, rows)
        path.write_bytes(path.read_bytes().replace("支付金额".encode(), "付款说明".encode(), 1))
    res = twins.same(twins.load())
    assert _outcome(res) == ("rejected", 0)
    assert _report(twins)["counts"] == {"ING-003": 1} and "支付金额" in _report(twins)["reason"]


@pytest.mark.parametrize(
    ("data", "rule"),
    [
        (b"\xff\xfe\x80\x00\x81" * 1000, "ING-001"),  # no encoding decodes it
        ("支付凭证号,预算单位\r\nV1,\x00\r\n".encode() * 10, "ING-001"),  # NUL: binary
        (b" \r\n" * 1000, "ING-003"),  # blank: no header
    ],
)
def test_unreadable_file_is_rejected_as_in_a_whole_read(twins: Twins, data: bytes, rule: str) -> None:
    for fund in twins.funds.values():
        (fund / NAME).parent.mkdir(parents=True, exist_ok=True)
        (fund / NAME).write_bytes(data)
    res = twins.same(twins.load())
    assert _outcome(res) == ("rejected", 0)
    assert _report(twins)["counts"] == {rule: 1}


def test_file_rewritten_while_streamed_is_refused_and_nothing_lands(
    twins: Twins, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bytes parsed chunk by chunk must be the bytes hashed in pass 0."""
    twins.write(NAME, payments())
    path = twins.funds["STREAMED"] / NAME
    real = ingest.CsvStream.tables

    def rewrite(self: Any) -> Any:  # after pass 0 hashed it, before the chunks are parsed
        path.write_bytes(path.read_bytes().replace(b"V000100", b"V999999"))
        return real(self)

    monkeypatch.setattr(ingest.CsvStream, "tables", rewrite)
    monkeypatch.setenv("BUDGET_MONITOR_STREAM_BYTES", "1")
    res = load_month(twins.funds["STREAMED"], "2021-03", twins.db_url, raise_on_reject=False)
    assert _outcome(res) == ("rejected", 0)
    assert "文件在读取过程中被改动" in res.rejected[0].reason and "ING-002" in res.rejected[0].reason
    assert _paid(twins) == 0 and store.snapshot(twins.engine, "STREAMED")["payments"] == []


def test_value_the_store_refuses_rolls_back_every_chunk(twins: Twins, monkeypatch: pytest.MonkeyPatch) -> None:
    """A database error on the last chunk (after four chunks were inserted) is
    the file's rejection (ING-005) and none of the file's rows lands."""
    from sqlalchemy.exc import DataError

    twins.write(NAME, payments())
    real = store.ChunkedLoad.add

    def refuse_late(self: Any, rows: Any) -> None:
        if any(r["voucher_no"] == f"V{ROWS - 1:06d}" for r in rows):
            raise DataError("INSERT", {}, Exception("value too long"))
        real(self, rows)

    monkeypatch.setattr(store.ChunkedLoad, "add", refuse_late)
    monkeypatch.setenv("BUDGET_MONITOR_STREAM_BYTES", "1")
    res = load_month(twins.funds["STREAMED"], "2021-03", twins.db_url, raise_on_reject=False)
    assert _outcome(res) == ("rejected", 0) and "ING-005" in res.rejected[0].reason
    assert _paid(twins) == 0
    with twins.engine.connect() as conn:
        kinds = (
            conn.execute(store.source_file.select().where(store.source_file.c.fund_code == "STREAMED")).mappings().all()
        )
    assert [f["kind"] for f in kinds] == ["budget"]


def test_good_file_is_read_once_more_after_its_encoding(twins: Twins, monkeypatch: pytest.MonkeyPatch) -> None:
    """A good file takes the single pass: no narrow scan, no second validation."""
    passes: list[str] = []
    real_tables, real_scan = ingest.CsvStream.tables, ingest.CsvStream.scan

    def tables(self: Any) -> Any:
        passes.append("tables")
        return real_tables(self)

    def scan(self: Any, columns: Any) -> Any:
        passes.append("scan")
        return real_scan(self, columns)

    monkeypatch.setattr(ingest.CsvStream, "tables", tables)
    monkeypatch.setattr(ingest.CsvStream, "scan", scan)
    twins.write(NAME, payments())
    res = twins.same(twins.load())
    assert _outcome(res) == ("loaded", ROWS)
    assert passes == ["tables"]


def test_verdicts_are_given_every_group_of_rows_and_a_late_failure_is_exact(
    twins: Twins, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a group of 900 rows the single pass asks GX three times; a bad row
    in the last group still rejects the file with the whole read's report."""
    runs: list[int] = []
    real_passed = validate.ChunkVerdicts.passed

    def passed(self: Any) -> bool:
        runs.append(self.rows)
        return real_passed(self)

    monkeypatch.setattr(validate.ChunkVerdicts, "GROUP_ROWS", 900)
    monkeypatch.setattr(validate.ChunkVerdicts, "passed", passed)
    twins.write(NAME, payments(changes={1950: _row(1950, kind="付款")}))
    res = twins.same(twins.load())
    assert _outcome(res) == ("rejected", ROWS)
    assert runs == [1200, 800]  # 3 chunks of 400, then the last 2 at the end
    assert _report(twins)["counts"] == {"PAY-007": 1}


def test_file_with_only_a_warning_lands_and_logs_it(twins: Twins, caplog: pytest.LogCaptureFixture) -> None:
    """A warning fails the single pass's GX run: the exact passes find only
    the warning, and the file lands (as a whole read lands it)."""
    header = ["抽样单号", "抽样日期", "品种类别", "抽检单位", "检验结论"]
    rows = [
        [f"YP{i:06d}", f"2021-{1 + i % 3:02d}-{1 + i % 28:02d}", "药品", UNITS[i % 3][0], "合格"] for i in range(ROWS)
    ]
    rows[1800][3] = "恩平市市场监督管理局"
    for fund in twins.funds.values():
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows([header, *rows])
        (fund / "inspections").mkdir()
        (fund / "inspections" / "2021-Q1_抽检记录.csv").write_text(buf.getvalue(), encoding="utf-8")
    with caplog.at_level("WARNING", logger="budget_monitor.pipeline"):
        res = twins.same(twins.load())
    (f,) = [f for f in res.files if f.kind == "inspections"]
    assert (f.status, f.rows) == ("loaded", ROWS)
    assert sum("第1802行" in r.getMessage() and "INS-007" in r.getMessage() for r in caplog.records) == 2
    assert len(store.snapshot(twins.engine, "STREAMED")["inspections"]) == ROWS


def test_key_hashes_that_clash_across_chunks_still_load(twins: Twins, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every voucher hashing alike (a clash the single pass cannot tell from a
    duplicate): the exact passes find no duplicate and the file lands."""
    monkeypatch.setattr(validate, "_hashes", lambda values: np.zeros(len(values), dtype=np.int64))
    twins.write(NAME, payments())
    res = twins.same(twins.load())
    assert _outcome(res) == ("loaded", ROWS)
    assert _paid(twins) == ROWS * 10_000


def test_streamed_file_is_never_read_whole(twins: Twins, monkeypatch: pytest.MonkeyPatch) -> None:
    real = ingest.read_table

    def whole(path: Path, kind: str) -> Any:
        assert kind != "payments", "a streamed file went through read_table"
        return real(path, kind)

    monkeypatch.setattr(ingest, "read_table", whole)
    monkeypatch.setattr(pipeline, "_records", _bounded(pipeline._records, pipeline.STREAM_LOAD_ROWS))
    monkeypatch.setenv("BUDGET_MONITOR_STREAM_BYTES", "1")
    twins.write(NAME, payments())
    res = load_month(twins.funds["STREAMED"], "2021-03", twins.db_url)
    assert _outcome(res) == ("loaded", ROWS)


def _bounded(fn: Callable[..., Any], limit: int) -> Callable[..., Any]:
    def records(df: Any, columns: list[str]) -> Any:
        assert len(df) <= limit
        return fn(df, columns)

    return records


def test_load_months_streams_a_large_file_beside_other_funds(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a DAG batch (funds in lockstep, small files validated together) a
    streamed file lands as load_month lands it, and the other funds' files too."""
    monkeypatch.setenv("BUDGET_MONITOR_STREAM_CHUNK_ROWS", str(CHUNK))
    funds = [make_fund(tmp_path / "batch", code) for code in ("BIG", "SMALL1", "SMALL2")]
    write_csv(funds[0] / NAME, payments())
    for fund in funds[1:]:
        write_csv(fund / NAME, payments(30))
    monkeypatch.setenv("BUDGET_MONITOR_STREAM_BYTES", str(50_000))  # the 2,000-row file only
    loads = load_months(funds, "2021-03", db_url)
    assert [ld.error for ld in loads] == [None, None, None]
    assert [_outcome(ld.result) for ld in loads] == [("loaded", ROWS), ("loaded", 30), ("loaded", 30)]
    alone = make_fund(tmp_path / "alone", "ALONE")
    shutil.copy(funds[0] / NAME, (alone / "payments").mkdir() or alone / NAME)
    monkeypatch.setenv("BUDGET_MONITOR_STREAM_BYTES", str(1 << 40))
    load_month(alone, "2021-03", db_url)
    engine = store.open_store(db_url)
    assert store.snapshot(engine, "BIG") == store.snapshot(engine, "ALONE")


def test_is_streamed_only_large_fact_csvs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUDGET_MONITOR_STREAM_BYTES", "400")
    big = write_csv(tmp_path / "p.csv", payments(10))
    small = write_csv(tmp_path / "s.csv", payments(0))
    assert ingest.is_streamed(big, "payments") and ingest.is_streamed(big, "inspections")
    assert not ingest.is_streamed(small, "payments")
    assert not ingest.is_streamed(big, "budget") and not ingest.is_streamed(big, "goals")
    xlsx = tmp_path / "p.xlsx"
    xlsx.write_bytes(big.read_bytes())
    assert not ingest.is_streamed(xlsx, "payments")
    monkeypatch.delenv("BUDGET_MONITOR_STREAM_BYTES")
    assert ingest.stream_bytes() == 32 << 20 and not ingest.is_streamed(big, "payments")
