"""ingest.read_table: encodings, XLSX, headers, typed columns, unreadable files."""

from __future__ import annotations

import datetime as dt
import hashlib
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from budget_monitor.ingest import IngestError, read_table
from budget_monitor.tables import HeaderError, match_headers, specs, split_unit
from ingest_fixtures import (
    BUDGET_HEADER,
    GOALS_HEADER,
    OUT_HEADER,
    PAY_HEADER,
    good_budget,
    good_goals,
    good_payments,
    write_csv,
    write_xlsx,
)


@pytest.mark.parametrize(
    ("encoding", "detected"),
    [("gbk", "gb18030"), ("utf-8-sig", "utf-8-sig"), ("utf-8", "utf-8"), ("gb18030", "gb18030")],
)
def test_csv_encodings_are_detected(tmp_path: Path, encoding: str, detected: str) -> None:
    path = write_csv(tmp_path / "payments" / "2021-03_支出明细.csv", PAY_HEADER, good_payments(), encoding)
    t = read_table(path, "payments")
    assert t.encoding == detected
    assert t.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert t.df["unit"].tolist()[0] == "江门市市场监督管理局"
    assert t.df["amount_fen"].tolist() == [123450, 50000, -3450]
    assert t.df["pay_date"].dt.date.tolist() == [dt.date(2021, 3, 5), dt.date(2021, 3, 6), dt.date(2021, 3, 7)]
    assert t.df["row"].tolist() == [2, 3, 4]
    assert t.df["kind"].tolist() == ["支付", "支付", "退回"]


def test_typed_columns_and_dtypes(tmp_path: Path) -> None:
    t = read_table(write_csv(tmp_path / "p.csv", PAY_HEADER, good_payments()), "payments")
    assert list(t.df.columns) == [
        "row",
        "voucher_no",
        "unit",
        "doc_no",
        "amount_fen",
        "pay_date",
        "kind",
        "econ_class",
        "memo",
    ]
    assert str(t.df["amount_fen"].dtype) == "Int64"
    assert str(t.df["pay_date"].dtype) == "datetime64[s]"
    assert t.problems == []


def test_utf16_is_rejected_as_unknown_encoding(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "p.csv", PAY_HEADER, good_payments(), "utf-16")
    with pytest.raises(IngestError, match="编码无法识别") as exc:
        read_table(path, "payments")
    assert exc.value.rule_id == "ING-001"
    assert "p.csv" in str(exc.value)


def test_random_bytes_are_rejected_as_unknown_encoding(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_bytes(bytes([0xFF, 0xFE, 0x80, 0x00, 0x81, 0xFF, 0x30]) * 50)
    with pytest.raises(IngestError, match="编码无法识别"):
        read_table(path, "payments")


def test_xlsx_with_real_date_and_number_cells(tmp_path: Path) -> None:
    rows = [
        ["V1", "江门市市场监督管理局", "江财工〔2021〕12号", 1234.5, dt.datetime(2021, 6, 30), "支付", "", ""],
        [12345, "江门市市场监督管理局", "江财工〔2021〕12号", 100, dt.date(2021, 7, 1), None, None, None],
        ["V3", "江门市市场监督管理局", "江财工〔2021〕12号", "1,000.00", "2021/7/2", "退回", "", ""],
        ["V4", "江门市市场监督管理局", "江财工〔2021〕12号", "5", 44379, "", "", ""],
    ]
    t = read_table(write_xlsx(tmp_path / "p.xlsx", PAY_HEADER, rows), "payments")
    assert t.encoding is None
    assert t.df["voucher_no"].tolist() == ["V1", "12345", "V3", "V4"]
    assert t.df["amount_fen"].tolist() == [123450, 10000, 100000, 500]
    assert t.df["pay_date"].dt.date.tolist() == [
        dt.date(2021, 6, 30),
        dt.date(2021, 7, 1),
        dt.date(2021, 7, 2),
        dt.date(2021, 7, 2),
    ]
    assert t.df["kind"].tolist() == ["支付", "支付", "退回", "支付"]


def test_truncated_xlsx_is_a_clean_error(tmp_path: Path) -> None:
    good = write_xlsx(tmp_path / "good.xlsx", PAY_HEADER, good_payments())
    bad = tmp_path / "bad.xlsx"
    bad.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    with pytest.raises(IngestError, match="XLSX 文件已损坏或不完整") as exc:
        read_table(bad, "payments")
    assert exc.value.rule_id == "ING-002"
    assert "bad.xlsx" in str(exc.value)


def test_not_a_zip_xlsx_is_a_clean_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.xlsx"
    bad.write_text("not an excel file", encoding="utf-8")
    with pytest.raises(IngestError, match="XLSX"):
        read_table(bad, "payments")


def test_header_only_file_is_valid_with_zero_rows(tmp_path: Path) -> None:
    t = read_table(write_csv(tmp_path / "p.csv", PAY_HEADER, []), "payments")
    assert t.n_rows == 0
    assert "amount_fen" in t.df.columns
    tx = read_table(write_xlsx(tmp_path / "p.xlsx", PAY_HEADER, []), "payments")
    assert tx.n_rows == 0


def test_missing_required_column_names_the_column(tmp_path: Path) -> None:
    header = [h for h in PAY_HEADER if h != "指标文号"]
    rows = [[c for i, c in enumerate(r) if i != 2] for r in good_payments()]
    with pytest.raises(IngestError, match="缺少必需的列“指标文号”") as exc:
        read_table(write_csv(tmp_path / "p.csv", header, rows), "payments")
    assert exc.value.rule_id == "ING-003"


def test_empty_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_bytes(b"")
    with pytest.raises(IngestError, match="文件为空"):
        read_table(path, "payments")


def test_extra_columns_are_ignored_but_kept_in_raw(tmp_path: Path) -> None:
    header = ["序号", *PAY_HEADER, "审核人"]
    rows = [[str(i), *r, "张三"] for i, r in enumerate(good_payments(), 1)]
    t = read_table(write_csv(tmp_path / "p.csv", header, rows), "payments")
    assert "审核人" in t.raw.columns and "序号" in t.raw.columns
    assert "审核人" not in t.df.columns
    assert t.raw["审核人"].tolist() == ["张三"] * 3


def test_english_aliases_and_any_column_order(tmp_path: Path) -> None:
    header = ["pay_date", "amount", "voucher_no", "doc_no", "unit"]
    rows = [["2021-03-05", "12.5", "V1", "江财工〔2021〕12号", "江门市市场监督管理局"]]
    t = read_table(write_csv(tmp_path / "p.csv", header, rows), "payments")
    assert t.df["amount_fen"].tolist() == [1250]
    assert t.df["kind"].tolist() == ["支付"]
    assert t.df["memo"].tolist() == [""]


@pytest.mark.parametrize("header", ["金额（万元）", "金额(万元)", "金额 ( 万元 )", "金额［万元］", "金额(单位:万元)"])
def test_wanyuan_header_scales_money(tmp_path: Path, header: str) -> None:
    rows = [["江财工〔2021〕12号", "江门市市场监督管理局", "2021-01-04", "372.09", "年初"]]
    t = read_table(
        write_csv(tmp_path / "budget.csv", ["指标文号", "预算单位", "下达日期", header, "类型"], rows), "budget"
    )
    assert t.df["amount_fen"].tolist() == [372_090_000]
    assert t.headers["amount_fen"].scale == 10_000
    assert t.header_of("amount_fen") == header


def test_payment_amount_header_in_wanyuan_and_yuan(tmp_path: Path) -> None:
    header = [h if h != "支付金额" else "支付金额(万元)" for h in PAY_HEADER]
    rows = [["V1", "江门市市场监督管理局", "江财工〔2021〕12号", "1.234567", "2021-03-05", "", "", ""]]
    t = read_table(write_csv(tmp_path / "p.csv", header, rows), "payments")
    assert t.df["amount_fen"].tolist() == [1_234_567]
    assert split_unit("支付金额（元）") == ("支付金额", 1)
    assert split_unit("支付金额") == ("支付金额", None)


def test_unit_on_a_non_money_column_is_an_error() -> None:
    with pytest.raises(HeaderError, match="不是金额列"):
        match_headers("budget", ["指标文号", "预算单位(万元)", "下达日期", "金额", "类型"])


def test_two_columns_for_one_field_is_an_error() -> None:
    with pytest.raises(HeaderError, match="都对应"):
        match_headers("budget", ["指标文号", "预算单位", "下达日期", "金额", "amount", "类型"])


def test_primary_header_wins_over_loose_synonym() -> None:
    m = match_headers("payments", [*PAY_HEADER, "金额"])
    assert m["amount_fen"].source == "支付金额"


def test_unreadable_cells_become_null_with_raw_kept(tmp_path: Path) -> None:
    rows = good_payments() + [["V9", "江门市市场监督管理局", "江财工〔2021〕12号", "壹仟元", "2021-02-30", "", "", ""]]
    t = read_table(write_csv(tmp_path / "p.csv", PAY_HEADER, rows), "payments")
    last = t.df.iloc[-1]
    assert pd.isna(last["amount_fen"]) and pd.isna(last["pay_date"])
    assert t.problems == [("amount_fen", 5, "壹仟元"), ("pay_date", 5, "2021-02-30")]
    assert t.raw_value("amount_fen", 5) == "壹仟元"


def test_blank_lines_are_dropped_but_row_numbers_kept(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    first = ",".join(good_payments()[1])
    lines = [",".join(PAY_HEADER), first, "", ",,,,,,,", first.replace("V002", "V005")]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    t = read_table(path, "payments")
    assert t.df["row"].tolist() == [2, 5]
    assert t.raw.index.tolist() == [2, 5]


def test_empty_required_cell_is_null_and_marked_empty(tmp_path: Path) -> None:
    rows = [["", "江门市市场监督管理局", "江财工〔2021〕12号", "", "2021-03-05", "", "", ""]]
    t = read_table(write_csv(tmp_path / "p.csv", PAY_HEADER, rows), "payments")
    assert pd.isna(t.df["voucher_no"].iloc[0])
    assert t.empty["voucher_no"].tolist() == [True]
    assert t.empty["amount_fen"].tolist() == [True]
    assert t.invalid["amount_fen"].tolist() == [False]


def test_goals_weights_are_decimal(tmp_path: Path) -> None:
    t = read_table(write_csv(tmp_path / "goals.csv", GOALS_HEADER, good_goals(), "utf-8-sig"), "goals")
    assert t.df["weight"].tolist() == [Decimal("40"), Decimal("30"), Decimal("20")]
    assert t.df["name"].tolist()[0] == "药品抽检批次"


def test_budget_and_outputs_typed(tmp_path: Path) -> None:
    b = read_table(write_csv(tmp_path / "budget.csv", BUDGET_HEADER, good_budget(), "gbk"), "budget")
    assert b.df["amount_fen"].tolist() == [1_000_000, 500_000, 100_000]
    assert b.df["date"].dt.date.tolist()[0] == dt.date(2021, 1, 4)
    rows = [
        ["2021-06", "", "药品抽检批次", "300", ""],
        ["2021年7月", "台山市市场监督管理局", "抽检合格率", "98.5%", "x"],
        ["2021/8", "", "群众满意度", "基本达成", ""],
    ]
    o = read_table(write_csv(tmp_path / "outputs.csv", OUT_HEADER, rows), "outputs")
    assert o.df["month"].tolist() == ["2021-06", "2021-07", "2021-08"]
    assert o.df["unit"].tolist() == ["", "台山市市场监督管理局", ""]
    assert o.df["value"].tolist() == ["300", "98.5%", "基本达成"]
    assert o.df["value_num"].tolist() == [Decimal("300"), Decimal("98.5"), None]


def test_number_thousands_separators_in_groups_of_three(tmp_path: Path) -> None:
    # Same rule as money: 1,234 is a number, 1,23,4 / 12,34 are not.
    rows = [["2021-06", "", "药品抽检批次", v, ""] for v in ("1,234", "1,234.5%", "1,23,4", "12,34")]
    o = read_table(write_csv(tmp_path / "outputs.csv", OUT_HEADER, rows), "outputs")
    assert o.df["value_num"].tolist() == [Decimal("1234"), Decimal("1234.5"), None, None]
    goals = [r[:4] + [w] for r, w in zip(good_goals(), ("1,000", "3,0", "20"), strict=True)]
    g = read_table(write_csv(tmp_path / "goals.csv", GOALS_HEADER, goals), "goals")
    assert g.df["weight"].tolist() == [Decimal("1000"), None, Decimal("20")]
    assert g.invalid["weight"].tolist() == [False, True, False]


def test_unknown_kind_and_file_type(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "p.csv", PAY_HEADER, [])
    with pytest.raises(ValueError):
        read_table(path, "nonsense")
    other = tmp_path / "p.json"
    other.write_text("{}", encoding="utf-8")
    with pytest.raises(IngestError, match="不支持的文件类型"):
        read_table(other, "payments")


def test_every_kind_has_specs() -> None:
    for kind in ("goals", "budget", "payments", "inspections", "outputs"):
        assert any(s.required for s in specs(kind))


def test_row_with_too_many_fields_is_a_clean_error(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    lines = [",".join(PAY_HEADER), ",".join(good_payments()[1]), ",".join(good_payments()[1]) + ",多余"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(IngestError, match="CSV 格式错误：第3行有 9 个字段，表头只有 8 列") as exc:
        read_table(path, "payments")
    assert exc.value.rule_id == "ING-002"


def test_unquoted_thousands_comma_in_first_row_is_a_clean_error(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    lines = [",".join(PAY_HEADER), ",".join(good_payments()[0]), ",".join(good_payments()[0])]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(IngestError, match="字段比表头多"):
        read_table(path, "payments")


def test_row_with_too_few_fields_reads_empty_cells(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    lines = [",".join(PAY_HEADER), ",".join(good_payments()[1][:6])]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    t = read_table(path, "payments")
    assert t.df["memo"].tolist() == [""]


def test_xlsx_empty_sheet_names_the_missing_columns(tmp_path: Path) -> None:
    from openpyxl import Workbook

    path = tmp_path / "p.xlsx"
    Workbook().save(path)
    with pytest.raises(IngestError, match="缺少必需的列“支付凭证号”") as exc:
        read_table(path, "payments")
    assert exc.value.rule_id == "ING-003"


def test_xlsx_first_sheet_only(tmp_path: Path) -> None:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.append(PAY_HEADER)
    ws.append(good_payments()[1])
    other = wb.create_sheet("说明")
    other.append(["这是说明页"])
    path = tmp_path / "p.xlsx"
    wb.save(path)
    t = read_table(path, "payments")
    assert t.n_rows == 1 and t.df["voucher_no"].tolist() == ["V002"]


# ------------------------------------------------------------ CsvStream (large files, in chunks)

from budget_monitor.ingest import CsvStream  # noqa: E402


def _streamed_equals_whole(path: Path, kind: str, chunk_rows: int) -> list:
    """Concatenated chunk tables == read_table of the whole file (frames, masks, sha, encoding)."""
    import numpy as np

    whole = read_table(path, kind)
    with CsvStream(path, kind, chunk_rows) as stream:
        parts = list(stream.tables())
    assert (stream.encoding, stream.sha256) == (whole.encoding, whole.sha256)
    assert all(t.sha256 == whole.sha256 and t.headers == whole.headers for t in parts)
    pd.testing.assert_frame_equal(pd.concat([t.df for t in parts]), whole.df)
    pd.testing.assert_frame_equal(pd.concat([t.raw for t in parts]), whole.raw)
    for masks in ("empty", "invalid", "out_of_range"):
        got, want = [getattr(t, masks) for t in parts], getattr(whole, masks)
        assert set(got[0]) == set(want)
        for col in want:
            assert np.array_equal(np.concatenate([g[col] for g in got]), want[col]), (masks, col)
    return parts


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk"])
@pytest.mark.parametrize("chunk_rows", [1, 2, 5])
def test_csv_stream_chunks_are_the_whole_read(tmp_path: Path, encoding: str, chunk_rows: int) -> None:
    """Blank lines (dropped, numbers kept), a quoted newline, a cell with a comma,
    surrounding blanks, an extra column, an empty 'Unnamed' column (dropped) and one
    holding a value in a late chunk only (kept), a 万元 header, a bad amount."""
    header = ["支付凭证号", "预算单位", "指标文号", "支付金额（万元）", "支付日期", "业务类型", "摘要", "备注", ""]
    body = [
        ["V1", "江门市市场监督管理局", "江财工〔2021〕12号", "1.5", "2021-03-05", "", "办公用品", "x", ""],
        ["", "", "", "", "", "", "", "", ""],
        [" V2 ", "台山市市场监督管理局", "江财工〔2021〕13号", "0.01", "2021/3/6", "支付", "第一行\n第二行", "", ""],
        ["V3", "江门市市场监督管理局", "江财工〔2021〕12号", "壹万", "2021-03-07", "退回", "含,逗号", "", ""],
        ["", "", "", "", "", "", "", "", ""],
        ["V4", "江门市市场监督管理局", "江财工〔2021〕12号", "-0.5", "2021-03-08", "退回", "", "", "尾注"],
        ["V5", "江门市市场监督管理局", "江财工〔2021〕12号", "2", "2021-02-30", "支付", "", "", ""],
    ]
    path = write_csv(tmp_path / "p.csv", header, body, encoding)
    parts = _streamed_equals_whole(path, "payments", chunk_rows)
    assert sum(t.n_rows for t in parts) == 5 and [t.df["row"].tolist() for t in parts if t.n_rows][0][0] == 2
    assert "Unnamed: 8" in parts[0].raw.columns  # holds 尾注 in the last record: kept, as _tidy keeps it


def test_csv_stream_of_a_header_only_file_is_one_empty_table(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "p.csv", PAY_HEADER, [])
    (table,) = _streamed_equals_whole(path, "payments", 10)
    assert table.n_rows == 0


def test_csv_stream_scan_types_the_chosen_columns_of_every_record(tmp_path: Path) -> None:
    rows = [*good_payments(), [""] * 8, good_payments()[0]]
    path = write_csv(tmp_path / "p.csv", PAY_HEADER, rows)
    with CsvStream(path, "payments", 2) as stream:
        chunks = list(stream.scan(["voucher_no", "amount_fen"]))
        assert stream.records == 5
    scan = pd.concat(chunks)
    assert list(scan.columns) == ["row", "voucher_no", "amount_fen"]
    assert scan["row"].tolist() == [2, 3, 4, 5, 6]  # the blank record too: a scan drops nothing
    assert scan["voucher_no"].tolist()[:3] == ["V001", "V002", "V003"] and pd.isna(scan["voucher_no"].iloc[3])
    assert scan["amount_fen"].tolist()[:3] == [123450, 50000, -3450]


@pytest.mark.parametrize(
    ("data", "rule", "text"),
    [
        ("支付凭证号,预算单位\nV1,x\n".encode("utf-16"), "ING-001", "编码无法识别"),
        (b"\n \n\t\n", "ING-003", "文件为空"),
        ((",".join(PAY_HEADER) + "\nV1,a,b,1,2021-03-05,支付,,,extra\n").encode(), "ING-002", "字段比表头多"),
        (
            (
                ",".join(PAY_HEADER) + "\n" + "V1,a,b,1,2021-03-05,支付,,\n" * 5 + "V9,a,b,1,2021-03-05,支付,,,x\n"
            ).encode(),
            "ING-002",
            "第7行有 9 个字段，表头只有 8 列",
        ),
        ("支付凭证号,预算单位\nV1,x\n".encode(), "ING-003", "缺少必需的列"),
    ],
)
def test_csv_stream_refuses_what_read_table_refuses(tmp_path: Path, data: bytes, rule: str, text: str) -> None:
    path = tmp_path / "p.csv"
    path.write_bytes(data)
    with pytest.raises(IngestError) as whole:
        read_table(path, "payments")
    with pytest.raises(IngestError) as streamed:
        with CsvStream(path, "payments", 2) as stream:
            list(stream.tables())
    assert (streamed.value.rule_id, str(streamed.value)) == (whole.value.rule_id, str(whole.value))
    assert streamed.value.rule_id == rule and text in str(streamed.value)


def test_csv_stream_refuses_a_symlink(tmp_path: Path) -> None:
    real = write_csv(tmp_path / "real.csv", PAY_HEADER, good_payments())
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    with pytest.raises(IngestError, match="无法读取文件") as exc:
        CsvStream(link, "payments")
    assert exc.value.rule_id == "ING-002"
