"""The frame Great Expectations validates (:func:`check_frame`) and the
prepare steps, for the checks GX has no expectation for.

A native rule reads the typed column (as GX compares it fastest, see
:func:`_typed_view`); a rule with a ``prepare`` step reads a column computed
here with vectorised pandas/numpy (the rules table says why for each). The
frame is narrow: ``row`` + the columns the suite reads.

Null-safety: a check passes on a null input (a missing or unreadable cell is
reported once, by the completeness/format rule, not again by every rule that
reads the column): GX's map expectations leave nulls out, and so do the
prepare steps.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from functools import cache
from typing import Any

import numpy as np
import pandas as pd

from ..budget import BUDGET_SIGN, signed_amounts
from ..ingest import IngestedTable
from .context import ValidationContext, pair_key
from .rules import Rule

_NATIVE_INT = ("Int64", "Int32")

Prepare = Callable[[IngestedTable, str, ValidationContext], np.ndarray]


def _parsed(t: IngestedTable, col: str, ctx: ValidationContext) -> np.ndarray:
    return ~t.invalid[col]


def _budget_signed(t: IngestedTable, col: str, ctx: ValidationContext) -> np.ndarray:
    # GX sums this column (BUD-006, BUD-015): exact Python ints where int64 could wrap.
    return exact_ints(signed_amounts(t.df["kind"], t.df[col]))


def exact_ints(values: np.ndarray) -> np.ndarray:
    """``values`` (int64) as they are when no sum of them can leave int64, else
    as Python ints (object array), so that sums and running totals stay exact.

    Every amount that passed parsing is below money.MAX_ABS_FEN (1e14 fen), so
    int64 is exact up to ~92,000 rows at that size; a bigger file of absurd
    amounts would wrap silently in numpy (ten 9999999999999999.99 元 rows once
    summed to a negative number and passed the over-budget check).
    """
    if len(values) == 0:
        return values
    biggest = int(np.abs(values).max()) if values.dtype != object else max(abs(int(v)) for v in values)
    if biggest * len(values) < 2**63:
        return values
    return np.array([int(v) for v in values.tolist()], dtype=object)


def fen_values(t: IngestedTable, col: str) -> np.ndarray:
    """A money column as exact fen, null (unreadable, empty, out of range) as 0."""
    return exact_ints(t.df[col].fillna(0).astype("int64").to_numpy())


def _in_range(t: IngestedTable, col: str, ctx: ValidationContext) -> np.ndarray:
    too_big = t.out_of_range.get(col)
    return np.ones(t.n_rows, dtype=bool) if too_big is None else ~too_big


def running_totals(t: IngestedTable, col: str, ctx: ValidationContext) -> np.ndarray:
    """Stored net paid + this file's running total after each row, exact (fen)."""
    return int(ctx.stored_net_fen) + np.cumsum(fen_values(t, col))


def _cumulative_within(t: IngestedTable, col: str, ctx: ValidationContext, field_name: str) -> np.ndarray:
    """PAY-011: when the file would take the fund's cumulative net payments over
    the budget in force, the row at which the running total first exceeds it
    fails (one row: the finance office is told where the money ran out); a
    file whose total stays within the budget passes, even if a refund later
    in it brought an earlier running total back under."""
    ok = np.ones(t.n_rows, dtype=bool)
    if t.n_rows == 0:
        return ok
    if ctx.file_facts is not None:
        # A chunk of a larger file: ChunkedFile found the row over the whole file.
        row = ctx.file_facts.over_budget_row.get(col)
        return ok if row is None else t.df["row"].to_numpy() != row
    limit = int(getattr(ctx, field_name))
    running = running_totals(t, col, ctx)
    if running[-1] <= limit:
        return ok
    ok[int(np.argmax(running > limit))] = False
    return ok


@cache
def store_length(kind: str, col: str) -> int | None:
    """The store column's declared length (characters) for ``kind``'s ``col``, or None."""
    from ..store import FACTS

    column = FACTS[kind].table.c.get(col)
    return getattr(column.type, "length", None) if column is not None else None


def group_budget(t: IngestedTable, col: str) -> pd.Series:
    """Signed budget total (年初 + 追加 − 调减, fen) per value of ``col``, for the
    groups whose every row has a readable amount and a known 类型 (a group with
    a bad cell cannot be totalled; that cell is reported by its own rule)."""
    df = t.df
    readable = df["amount_fen"].notna() & df["kind"].isin(list(BUDGET_SIGN))
    frame = pd.DataFrame(
        {
            "key": df[col],
            "fen": exact_ints(signed_amounts(df["kind"], df["amount_fen"])),
            "ok": readable.to_numpy(dtype=bool),
        }
    )
    frame = frame[frame["key"].notna()]
    grouped = frame.groupby("key", sort=False)
    totals = grouped["fen"].sum()
    totals = totals[grouped["ok"].all()]
    return totals if totals.dtype == object else totals.astype("int64")


def _covers_paid(t: IngestedTable, col: str, ctx: ValidationContext, field_name: str) -> np.ndarray:
    """A budget row passes unless its 预算单位 / 指标文号 (``col``) has stored
    payments (``ctx.<field_name>``, net fen) above the group's signed budget."""
    paid: Mapping[str, int] = getattr(ctx, field_name)
    # Budgets have few units / doc_nos: judge each group with exact ints.
    short = [k for k, total in group_budget(t, col).items() if k in paid and int(total) < paid[k]]
    return ~t.df[col].isin(short).to_numpy(dtype=bool)


def _pair_key(t: IngestedTable, col: str, ctx: ValidationContext, other: str) -> np.ndarray:
    """Each row's allocation key ``pair_key(col, other)``; null when either part is."""
    a, b = t.df[col].astype(object), t.df[other].astype(object)
    missing = (a.isna() | b.isna()).to_numpy()
    keys = [None if gone else pair_key(x, y) for x, y, gone in zip(a.tolist(), b.tolist(), missing.tolist())]
    return np.array(keys, dtype=object)


def _pair_in(t: IngestedTable, col: str, ctx: ValidationContext, field_name: str) -> np.ndarray:
    """(指标文号 ``col``, 预算单位) must be an allocation of the budget. Passes
    when either part is null or itself unknown: PAY-001/004/005 report those."""
    pairs: frozenset[tuple[str, str]] = getattr(ctx, field_name)
    docs = sorted(ctx.doc_nos if ctx.doc_nos is not None else {d for d, _ in pairs})
    units = sorted(ctx.units if ctx.units is not None else {u for _, u in pairs})
    # Codes against the known values (-1: null or unknown, judged elsewhere),
    # then one lookup in a small doc x unit table: O(rows) in numpy.
    d = pd.Index(docs, dtype=object).get_indexer(t.df[col].astype(object))
    u = pd.Index(units, dtype=object).get_indexer(t.df["unit"].astype(object))
    table = np.zeros((len(docs) + 1, len(units) + 1), dtype=bool)
    table[-1, :] = table[:, -1] = True
    d_at = {v: i for i, v in enumerate(docs)}
    u_at = {v: i for i, v in enumerate(units)}
    for doc, unit in pairs:
        if doc in d_at and unit in u_at:
            table[d_at[doc], u_at[unit]] = True
    return table[d, u]


def _weight_milli(t: IngestedTable, col: str, ctx: ValidationContext) -> np.ndarray:
    # Goal tables are tiny; exact Decimal per cell. Null weights count 0.
    return np.array([int(w * 1000) if w is not None else 0 for w in t.df[col]], dtype="int64")


PREPARES: dict[str, Callable[..., np.ndarray]] = {
    "pair_key": _pair_key,
    "parsed": _parsed,
    "budget_signed": _budget_signed,
    "weight_milli": _weight_milli,
    "covers_paid": _covers_paid,
    "pair_in": _pair_in,
    "in_range": _in_range,
    "cumulative_within": _cumulative_within,
}


def check_column(r: Rule, col: str) -> str:
    """The check-frame column the expectation of ``r`` on ``col`` reads."""
    if r.prepare:
        return f"{col}__{re.sub(r'[^0-9A-Za-z_]', '_', r.prepare)}"
    if r.expectation == "ExpectColumnValuesToNotBeNull" and not _blank_is_null(r.table, col):
        return f"{col}__text"
    return col


def _prepare(t: IngestedTable, r: Rule, col: str, ctx: ValidationContext) -> np.ndarray:
    name, _, arg = r.prepare.partition(":")
    fn = PREPARES[name]
    return fn(t, col, ctx, arg) if arg else fn(t, col, ctx)


def check_frame(t: IngestedTable, rules: Iterable[Rule], ctx: ValidationContext) -> pd.DataFrame:
    """The narrow frame GX validates: ``row`` + the columns the rules read.

    A prepared rule reads its step's column; a native rule reads the typed
    column (:func:`_typed_view`), a not-null rule the cell as written
    (:func:`_text_view`) where the typed column is also null for an
    unreadable cell.
    """
    cols: dict[str, Any] = {"row": t.df["row"].to_numpy()}
    for r in rules:
        for col in r.columns:
            name = check_column(r, col)
            if name in cols:
                continue
            if r.prepare:
                cols[name] = _prepare(t, r, col, ctx)
            elif name != col:
                cols[name] = _text_view(t, col)
            else:
                cols[name] = _typed_view(t, col)
        for col in r.condition_columns():
            if col not in cols:
                cols[col] = _typed_view(t, col)
    return pd.DataFrame(cols, index=t.df.index)


# A date past this is outside every fund year; datetime64[ns] (below) ends in 2262.
_LAST_NS_DATE = np.datetime64("2262-01-01", "s")


def _typed_view(t: IngestedTable, col: str) -> Any:
    """A typed column as GX compares it fastest, same values and nulls.

    GX compares int/float and datetime64[ns] columns vectorised and anything
    else (nullable Int64, datetime64[s]) one value at a time in Python. So
    money goes as float64 (every amount is below money.MAX_ABS_FEN = 1e14 fen
    < 2**53, held exactly; NaN is a null GX leaves out), dates as [ns] (a
    date past 2262 clipped there: it fails a fund-year bound either way), and
    text that value sets or row conditions read as a categorical (isin and
    comparisons on the few distinct values; 预算单位, 业务类型 ...).
    """
    s = t.df[col]
    if str(s.dtype) in _NATIVE_INT:
        return s.astype("float64").to_numpy()
    if str(s.dtype).startswith("datetime64"):
        return np.minimum(s.to_numpy(dtype="datetime64[s]"), _LAST_NS_DATE).astype("datetime64[ns]")
    if str(s.dtype) == "str" and col in _categorical_columns(t.kind):
        return s.astype("category")
    return s


def _text_view(t: IngestedTable, col: str) -> pd.Series:
    """The cell as written, blank (after trimming) as null."""
    match = t.headers.get(col)
    if match is None:
        return pd.Series(None, index=t.df.index, dtype="str")
    return t.raw[match.source].mask(t.empty[col])


@cache
def _blank_is_null(kind: str, col: str) -> bool:
    """Is ``col``'s typed column null exactly where the cell is blank (a required
    text column, see tables.py), so that a not-null rule can read it as it is?"""
    from ..tables import specs

    return any(s.column == col and s.type == "str" and s.required for s in specs(kind))


# Native expectations that compare a column with a set of values.
_VALUE_SETS = frozenset({"ExpectColumnValuesToBeInSet", "ExpectColumnValuesToNotBeInSet"})


@cache
def _categorical_columns(kind: str) -> frozenset[str]:
    """Text columns of ``kind`` that a value set or a row condition reads."""
    from .rules import rules_for

    out: set[str] = set()
    for r in rules_for(kind):
        if not r.prepare and r.expectation in _VALUE_SETS:
            out.update(r.columns)
        if r.kwargs.get("row_condition"):
            out.update(r.condition_columns())
    return frozenset(out)
