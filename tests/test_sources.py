"""Pull from a SQL source database (PostgreSQL): a month's rows become a file snapshot."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from sqlalchemy import create_engine, text

from budget_monitor.sources import SqlSource, fund_files, pull_month


def _seed_source(url: str) -> None:
    eng = create_engine(url)
    with eng.begin() as conn:
        conn.execute(
            text(
                "CREATE TABLE payments (fund_code text, voucher_no text, unit text, doc_no text,"
                " amount numeric(14,2), pay_date date, kind text, econ_class text, memo text)"
            )
        )
        conn.execute(
            text(
                "CREATE TABLE inspections (fund_code text, sample_no text, sample_date date,"
                " category text, unit text, result text)"
            )
        )
        conn.execute(
            text("CREATE TABLE outputs (fund_code text, month text, unit text, name text, value text, note text)")
        )
        conn.execute(
            text(
                "INSERT INTO payments VALUES"
                " ('F1','V1','甲','文1',1234.50,'2021-03-01','支付','30201','办公费'),"
                " ('F1','V2','甲','文1',10.00,'2021-04-01','支付',NULL,NULL),"
                " ('F2','V3','乙','文2',99.00,'2021-03-02','支付',NULL,NULL)"
            )
        )
        conn.execute(text("INSERT INTO inspections VALUES ('F1','S1','2021-03-09','药品','甲','合格')"))
    eng.dispose()


def test_pull_month_writes_only_the_funds_month(pg_url: str, tmp_path: Path) -> None:
    _seed_source(pg_url)
    written = pull_month(SqlSource(pg_url), "F1", "2021-03", tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in written] == [
        "payments/pulled_F1_2021-03.csv",
        "inspections/pulled_F1_2021-03.csv",
    ]
    lines = written[0].read_text(encoding="utf-8").splitlines()
    assert lines == [
        "voucher_no,unit,doc_no,amount,pay_date,kind,econ_class,memo",
        "V1,甲,文1,1234.50,2021-03-01,支付,30201,办公费",
    ]
    assert fund_files(tmp_path)["payments"] == [written[0]]


def test_pulling_twice_gives_identical_bytes(pg_url: str, tmp_path: Path) -> None:
    _seed_source(pg_url)
    (first,) = pull_month(SqlSource(pg_url), "F1", "2021-04", tmp_path)
    data = first.read_bytes()
    (again,) = pull_month(SqlSource(pg_url), "F1", "2021-04", tmp_path)
    assert again.read_bytes() == data and date(2021, 4, 1).isoformat() in data.decode()
