"""Store: exact money, atomic per-file loads, idempotent re-sends, audit of corrections.

Runs on SQLite and on PostgreSQL (fixture ``db_url``).
"""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from budget_monitor import store

FUND = "T-2021"


def _pay(voucher: str, fen: int, day: date = date(2021, 3, 5), unit: str = "台山市市场监督管理局") -> dict:
    return {
        "voucher_no": voucher,
        "unit": unit,
        "doc_no": "江财工〔2021〕1号",
        "amount_fen": fen,
        "pay_date": day,
        "kind": "支付",
        "econ_class": "30201",
        "memo": "办公费",
    }


@pytest.fixture
def engine(db_url: str):
    eng = store.open_store(db_url)
    store.upsert_fund(eng, FUND, "测试专项资金", 2021, "测试局")
    return eng


def test_money_is_exact_integer_fen(engine) -> None:
    big = 372_090_000  # 3,720,900.00 yuan
    store.load_rows(
        engine,
        fund_code=FUND,
        kind="payments",
        name="a.csv",
        sha256="a" * 64,
        rows=[_pay("V1", big), _pay("V2", 1), _pay("V3", -1)],
    )
    assert store.net_paid_fen(engine, FUND) == big
    with engine.connect() as conn:
        amounts = sorted(conn.execute(select(store.payment.c.amount_fen)).scalars())
    assert amounts == [-1, 1, big] and all(type(a) is int for a in amounts)


def test_resending_the_same_file_changes_nothing(engine) -> None:
    rows = [_pay("V1", 100_00), _pay("V2", 250_50)]
    first = store.load_rows(engine, fund_code=FUND, kind="payments", name="a.csv", sha256="b" * 64, rows=rows)
    before = store.snapshot(engine, FUND)
    again = store.load_rows(engine, fund_code=FUND, kind="payments", name="a.csv", sha256="b" * 64, rows=rows)
    assert first.inserted == 2 and again.skipped
    assert store.snapshot(engine, FUND) == before
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(store.source_file)).scalar() == 1


def test_corrected_payment_replaces_row_and_is_audited(engine) -> None:
    store.load_rows(
        engine,
        fund_code=FUND,
        kind="payments",
        name="a.csv",
        sha256="c" * 64,
        rows=[_pay("V1", 100_00), _pay("V2", 250_50)],
    )
    stats = store.load_rows(
        engine, fund_code=FUND, kind="payments", name="a_fix.csv", sha256="d" * 64, rows=[_pay("V2", 205_50)]
    )
    assert stats.replaced == 1 and stats.audited == 1
    assert store.net_paid_fen(engine, FUND) == 100_00 + 205_50
    (row,) = store.read_audit(engine, FUND)
    assert (row["row_key"], row["column_name"], row["old_value"], row["new_value"]) == (
        "V2",
        "amount_fen",
        "25050",
        "20550",
    )


def test_load_is_atomic_per_file(engine) -> None:
    store.load_rows(engine, fund_code=FUND, kind="payments", name="good.csv", sha256="e" * 64, rows=[_pay("V1", 100)])
    before = store.snapshot(engine, FUND)
    bad = [_pay("V7", 100), {**_pay("V8", 100), "unit": None}]  # NOT NULL violated mid-file
    with pytest.raises(IntegrityError):
        store.load_rows(engine, fund_code=FUND, kind="payments", name="bad.csv", sha256="f" * 64, rows=bad)
    assert store.snapshot(engine, FUND) == before
    assert not store.is_loaded(engine, FUND, "f" * 64)


def test_budget_file_replaces_the_snapshot_with_audit(engine) -> None:
    def alloc(unit: str, fen: int, kind: str = "年初") -> dict:
        return {"doc_no": "江财工〔2021〕1号", "unit": unit, "kind": kind, "date": date(2021, 1, 20), "amount_fen": fen}

    store.load_rows(
        engine,
        fund_code=FUND,
        kind="budget",
        name="budget.csv",
        sha256="1" * 64,
        rows=[alloc("甲", 100_000_00), alloc("乙", 50_000_00)],
    )
    assert store.read_audit(engine, FUND) == []  # a first load is not a change
    store.load_rows(
        engine, fund_code=FUND, kind="budget", name="budget.csv", sha256="2" * 64, rows=[alloc("甲", 120_000_00)]
    )
    df = store.read_allocations(engine, FUND)
    assert df["amount_fen"].tolist() == [120_000_00]
    changes = {(a["row_key"], a["column_name"], a["old_value"], a["new_value"]) for a in store.read_audit(engine, FUND)}
    assert ("江财工〔2021〕1号|甲|年初", "amount_fen", "10000000", "12000000") in changes
    assert ("江财工〔2021〕1号|乙|年初", "amount_fen", "5000000", None) in changes


def test_large_file_uses_bulk_path_and_round_trips(engine) -> None:
    rows = [_pay(f"V{i:06d}", i) for i in range(3000)]
    store.load_rows(engine, fund_code=FUND, kind="payments", name="big.csv", sha256="9" * 64, rows=rows)
    assert store.net_paid_fen(engine, FUND) == sum(range(3000))
    by_day = store.read_payments_by_day(engine, FUND, date(2021, 12, 31))
    assert int(by_day["amount_fen"].sum()) == sum(range(3000))


def test_archive_keeps_raw_bytes_under_sha256(tmp_path) -> None:
    src = tmp_path / "支出.csv"
    src.write_bytes("支付凭证号\n".encode("gb18030"))
    sha = store.sha256_of(src)
    dest = store.archive_file(src, FUND, sha, archive_root=tmp_path / "arch")
    assert dest.read_bytes() == src.read_bytes() and sha in dest.name


def test_concurrent_first_opens_migrate_once(pg_url: str) -> None:
    """Parallel tasks opening a fresh PostgreSQL store all succeed (advisory lock)."""
    from concurrent.futures import ThreadPoolExecutor

    from sqlalchemy import create_engine

    def open_fresh(_: int) -> None:
        engine = create_engine(store.normalise_url(pg_url))
        try:
            store.upgrade(engine)
        finally:
            engine.dispose()

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(open_fresh, range(4)))
    assert store.table_counts(store.open_store(pg_url), FUND)["payments"] == 0
