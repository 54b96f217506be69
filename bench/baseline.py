"""Bare-tool baselines: what the same work costs written directly on pandas / SQL / duckdb.

These are the yardsticks our pipeline is compared with in the same process:

- :func:`bare_year` — pandas ``read_csv`` (GBK, all text) + exact fen + date
  parse + the payments checks of ``rules/validation_rules.csv`` as pandas
  masks + one bulk load into the same store schema (COPY on PostgreSQL, Core
  executemany on SQLite) + one SQL GROUP BY read back.
- :func:`payment_masks` — the same checks on an already typed frame (stage b's
  denominator for Great Expectations).
- :func:`duckdb_year` — duckdb on the UTF-8 copy: read + exact fen + date +
  the same checks + persist + GROUP BY.

No float touches money: amounts are split at the decimal point and parsed as
integers (the fast path the anchors measure), the format is checked first.
"""

from __future__ import annotations

import io
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

PAY_COLS = {
    "支付凭证号": "voucher_no",
    "预算单位": "unit",
    "指标文号": "doc_no",
    "支付金额": "amount",
    "支付日期": "pay_date",
    "业务类型": "kind",
    "经济分类": "econ_class",
    "摘要": "memo",
}
BUD_COLS = {"指标文号": "doc_no", "预算单位": "unit", "下达日期": "date", "金额": "amount", "类型": "kind"}
_FEN_RE = r"-?\d{1,16}\.\d{2}"
_SIGN = {"年初": 1, "追加": 1, "调减": -1}
# One rule id per check, as in rules/validation_rules.csv (PAY-001 covers five columns).
CHECKS = (
    "PAY-001:voucher_no",
    "PAY-001:unit",
    "PAY-001:doc_no",
    "PAY-001:amount_fen",
    "PAY-001:pay_date",
    "PAY-002",
    "PAY-003",
    "PAY-004",
    "PAY-005",
    "PAY-006",
    "PAY-007",
    "PAY-008",
    "PAY-009",
    "PAY-010",
    "PAY-011",
)


def exact_fen(text: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """'1234.50' -> 123450 (int64) and a validity mask; exact, no float."""
    ok = text.str.fullmatch(_FEN_RE).to_numpy(dtype=bool)
    digits = text.str.replace(".", "", regex=False).where(ok, "0")
    return digits.astype("int64").to_numpy(), ok


def read_budget(path: Path, encoding: str = "utf-8") -> tuple[frozenset[str], frozenset[str], int]:
    b = pd.read_csv(path, encoding=encoding, dtype=str, keep_default_na=False).rename(columns=BUD_COLS)
    fen, _ = exact_fen(b["amount"])
    adjusted = int((fen * b["kind"].map(_SIGN).fillna(0).astype("int64").to_numpy()).sum())
    return frozenset(b["unit"]), frozenset(b["doc_no"]), adjusted


def payment_masks(
    voucher: pd.Series,
    unit: pd.Series,
    doc: pd.Series,
    fen: pd.Series | np.ndarray,
    fen_ok: np.ndarray,
    fen_empty: np.ndarray,
    pay_date: pd.Series,
    date_empty: np.ndarray,
    kind: pd.Series,
    *,
    units: frozenset[str],
    docs: frozenset[str],
    year: int,
    remaining_fen: int,
) -> dict[str, int]:
    """The 15 payments checks as pandas/numpy masks; returns failing-row counts per check."""
    fen = np.asarray(fen)
    dt = pay_date.to_numpy(dtype="datetime64[s]")
    nat = np.isnat(dt)
    refund = (kind == "退回").to_numpy(dtype=bool)
    out = {
        "PAY-001:voucher_no": int((voucher == "").sum() + voucher.isna().sum()),
        "PAY-001:unit": int((unit == "").sum() + unit.isna().sum()),
        "PAY-001:doc_no": int((doc == "").sum() + doc.isna().sum()),
        "PAY-001:amount_fen": int(fen_empty.sum()),
        "PAY-001:pay_date": int(date_empty.sum()),
        "PAY-002": int((~fen_ok & ~fen_empty).sum()),
        "PAY-003": int((nat & ~date_empty).sum()),
        "PAY-004": int((~unit.isin(units) & unit.notna() & (unit != "")).sum()),
        "PAY-005": int((~doc.isin(docs) & doc.notna() & (doc != "")).sum()),
        "PAY-006": int(
            (~nat & ((dt < np.datetime64(f"{year}-01-01", "s")) | (dt > np.datetime64(f"{year}-12-31", "s")))).sum()
        ),
        "PAY-007": int((~kind.isin(["支付", "退回"])).sum()),
        "PAY-008": int(((fen < 0) & fen_ok & ~refund).sum()),
        "PAY-009": int((refund & (fen >= 0) & fen_ok).sum()),
        "PAY-010": int(voucher.duplicated(keep=False).sum()),
        "PAY-011": int(np.where(fen_ok, fen, 0).sum() > remaining_fen),
    }
    return out


def bare_read_typed(path: Path, encoding: str = "gbk") -> dict[str, Any]:
    """read_csv + exact fen + date parse; returns the typed columns."""
    df = pd.read_csv(path, encoding=encoding, dtype=str, keep_default_na=False, usecols=list(PAY_COLS))
    df = df.rename(columns=PAY_COLS)
    fen, ok = exact_fen(df["amount"])
    fen_empty = (df["amount"] == "").to_numpy(dtype=bool)
    dates = pd.to_datetime(df["pay_date"], format="%Y-%m-%d", errors="coerce")
    date_empty = (df["pay_date"] == "").to_numpy(dtype=bool)
    kind = df["kind"].where(df["kind"] != "", "支付")
    return {
        "df": df,
        "fen": fen,
        "fen_ok": ok,
        "fen_empty": fen_empty,
        "dates": dates,
        "date_empty": date_empty,
        "kind": kind,
    }


def _copy_pg(engine: Any, fund_code: str, t: dict[str, Any]) -> None:
    from budget_monitor import store

    df = t["df"]
    out = pd.DataFrame(
        {
            "fund_code": fund_code,
            "voucher_no": df["voucher_no"],
            "unit": df["unit"],
            "doc_no": df["doc_no"],
            "amount_fen": t["fen"],
            "pay_date": t["dates"].dt.strftime("%Y-%m-%d"),
            "kind": t["kind"],
            "econ_class": df["econ_class"],
            "memo": df["memo"],
        }
    )
    buf = io.StringIO()
    out.to_csv(buf, index=False, header=False)
    data = buf.getvalue().encode("utf-8")
    cols = ", ".join(out.columns)
    with engine.begin() as conn:
        raw = conn.connection.driver_connection
        with raw.cursor() as cur:
            with cur.copy(f"COPY {store.payment.name} ({cols}) FROM STDIN (FORMAT csv)") as cp:
                for i in range(0, len(data), 1 << 20):
                    cp.write(data[i : i + (1 << 20)])


def _executemany_sqlite(engine: Any, fund_code: str, t: dict[str, Any]) -> None:
    from sqlalchemy import insert

    from budget_monitor import store

    df = t["df"]
    days = t["dates"].to_numpy(dtype="datetime64[D]").astype("int64") + 719163  # ordinal of 1970-01-01
    cache: dict[int, date] = {}
    pay = [cache.get(d) or cache.setdefault(d, date.fromordinal(d)) for d in days.tolist()]
    keys = ("voucher_no", "unit", "doc_no", "amount_fen", "pay_date", "kind", "econ_class", "memo")
    cols = (
        df["voucher_no"].tolist(),
        df["unit"].tolist(),
        df["doc_no"].tolist(),
        t["fen"].tolist(),
        pay,
        t["kind"].tolist(),
        df["econ_class"].tolist(),
        df["memo"].tolist(),
    )
    records = [{"fund_code": fund_code, **dict(zip(keys, row))} for row in zip(*cols)]
    with engine.begin() as conn:
        conn.execute(insert(store.payment), records)


def group_by(engine: Any, fund_code: str, through: date) -> pd.DataFrame:
    """One SQL GROUP BY (unit x day), read back: what the compute step needs."""
    from sqlalchemy import func, select

    from budget_monitor import store

    p = store.payment
    stmt = (
        select(p.c.unit, p.c.pay_date, func.sum(p.c.amount_fen).label("amount_fen"))
        .where(p.c.fund_code == fund_code, p.c.pay_date <= through)
        .group_by(p.c.unit, p.c.pay_date)
        .order_by(p.c.pay_date, p.c.unit)
    )
    with engine.connect() as conn:
        res = conn.execute(stmt)
        return pd.DataFrame(res.fetchall(), columns=list(res.keys()))


def bare_year(path: Path, budget_path: Path, engine: Any, fund_code: str, year: int, rec: Any) -> dict[str, Any]:
    """The whole bare baseline, with a timed step per part (``rec.step``)."""
    with rec.step("base_read"):
        t = bare_read_typed(path, "gbk")
    with rec.step("base_checks"):
        units, docs, adjusted = read_budget(budget_path)
        df = t["df"]
        fails = payment_masks(
            df["voucher_no"],
            df["unit"],
            df["doc_no"],
            t["fen"],
            t["fen_ok"],
            t["fen_empty"],
            t["dates"],
            t["date_empty"],
            t["kind"],
            units=units,
            docs=docs,
            year=year,
            remaining_fen=adjusted,
        )
    if any(fails.values()):
        raise RuntimeError(f"baseline checks failed on generated data: {fails}")
    with rec.step("base_load"):
        if engine.dialect.name == "postgresql":
            _copy_pg(engine, fund_code, t)
        else:
            _executemany_sqlite(engine, fund_code, t)
    with rec.step("base_aggregate"):
        agg = group_by(engine, fund_code, date(year, 12, 31))
    return {"rows": len(df), "groups": len(agg), "net_fen": int(agg["amount_fen"].sum())}


def duckdb_year(utf8_path: Path, budget_path: Path, db_path: Path, year: int) -> dict[str, Any]:
    """duckdb: read + exact fen + date + the same checks + persist + GROUP BY."""
    import duckdb

    if db_path.exists():
        db_path.unlink()
    con = duckdb.connect(str(db_path))
    try:
        con.execute(f"""
            CREATE TABLE budget AS SELECT "指标文号" AS doc_no, "预算单位" AS unit, "类型" AS kind,
                CAST(replace("金额", '.', '') AS BIGINT) AS amount_fen
            FROM read_csv('{budget_path}', header=true, all_varchar=true)""")
        con.execute(f"""
            CREATE TABLE payment AS SELECT
                "支付凭证号" AS voucher_no, "预算单位" AS unit, "指标文号" AS doc_no,
                "支付金额" AS amount_text,
                CASE WHEN regexp_full_match("支付金额", '{_FEN_RE}')
                     THEN CAST(replace("支付金额", '.', '') AS BIGINT) END AS amount_fen,
                "支付日期" AS date_text,
                CAST(try_strptime("支付日期", '%Y-%m-%d') AS DATE) AS pay_date,
                coalesce(nullif("业务类型", ''), '支付') AS kind,
                "经济分类" AS econ_class, "摘要" AS memo
            FROM read_csv('{utf8_path}', header=true, all_varchar=true)""")
        fails = con.execute(f"""
            WITH u AS (SELECT DISTINCT unit FROM budget), d AS (SELECT DISTINCT doc_no FROM budget)
            SELECT
              count(*) FILTER (WHERE coalesce(voucher_no, '') = '' OR coalesce(unit, '') = ''
                                 OR coalesce(doc_no, '') = '' OR coalesce(amount_text, '') = ''
                                 OR coalesce(date_text, '') = ''),
              count(*) FILTER (WHERE amount_fen IS NULL AND coalesce(amount_text, '') <> ''),
              count(*) FILTER (WHERE pay_date IS NULL AND coalesce(date_text, '') <> ''),
              count(*) FILTER (WHERE unit NOT IN (SELECT unit FROM u)),
              count(*) FILTER (WHERE doc_no NOT IN (SELECT doc_no FROM d)),
              count(*) FILTER (WHERE pay_date < DATE '{year}-01-01' OR pay_date > DATE '{year}-12-31'),
              count(*) FILTER (WHERE kind NOT IN ('支付', '退回')),
              count(*) FILTER (WHERE amount_fen < 0 AND kind <> '退回'),
              count(*) FILTER (WHERE amount_fen >= 0 AND kind = '退回'),
              count(*) - count(DISTINCT voucher_no),
              CAST(sum(amount_fen) > (SELECT sum(CASE kind WHEN '调减' THEN -amount_fen ELSE amount_fen END)
                                      FROM budget) AS INT)
            FROM payment""").fetchone()
        if any(fails):
            raise RuntimeError(f"duckdb checks failed on generated data: {fails}")
        agg = con.execute(f"""
            SELECT unit, pay_date, CAST(sum(amount_fen) AS BIGINT) AS amount_fen FROM payment
            WHERE pay_date <= DATE '{year}-12-31' GROUP BY unit, pay_date ORDER BY pay_date, unit""").df()
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return {"groups": len(agg), "net_fen": int(agg["amount_fen"].sum())}
