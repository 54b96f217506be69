"""Validation of ingested tables with Great Expectations, rules as data.

Every rule is a row of ``rules/validation_rules.csv`` (in the spirit of the
DATA Act broker's sqlRules.csv): rule_id, table, severity (fatal/warning),
category, column(s), an optional ``prepare`` step, the GX expectation class,
its kwargs (JSON; GX's own ``{"$PARAMETER": name}`` syntax for values that
come from the fund, e.g. the allowed inspection categories or the budget still
available) and the Chinese message template.

How a file is checked (one suite per table kind):

1. ``prepare`` steps turn row-wise conditions that need pandas anyway
   (membership in the budget's units, uniqueness, "negative only for 退回",
   "inside the fund year", parse failures left by ingest) into boolean columns
   with vectorised pandas. Each rule gets its own column, so GX reports each
   rule with its own id and the failing rows (``row``). Expectations without a
   ``prepare`` run natively on the typed column (value sets, bounds, sums).
2. The narrow check frame (``row`` + the columns the suite reads) goes through
   a ValidationDefinition of an ephemeral GX context. A good file costs one
   run (``result_format=BASIC``: counts and observed values only). A bad file
   gets a second run of the same suite over only the rows holding the first
   failing values, with ``SUMMARY`` and ``unexpected_index_column_names=["row"]``
   for the row numbers (see :func:`validate_table` for why).

The GX context, data source, asset, batch definition and the suites are built
once per process (lazily: importing great_expectations costs seconds), so a
batch of funds pays the import once.

Budget against the store (BUD-009..BUD-013): a corrected budget replaces the
stored one, so it is checked against the payments already stored
(``ValidationContext.paid_by_unit`` / ``paid_by_doc`` / ``paid_by_pair``,
filled by the pipeline): a unit, doc_no or (doc_no, unit) allocation with
stored payments must stay in the budget (GX's distinct-values-contain-set,
one failure per missing value) and a unit's or doc_no's signed budget must
cover its net paid (prepare ``covers_paid``, every row of a short
unit/doc_no fails).

Null-safety: a prepared check passes on a null input (a missing or unreadable
cell is reported once, by the completeness/format rule, not again by every
rule that reads the column). Native numeric checks see null money as 0.

Sign convention (PAY-008/PAY-009): a refund (业务类型 退回) is written as a
negative amount, every other payment as a positive (or zero) amount; the
net executed amount is the plain sum. A positive 退回 row is rejected rather
than guessed at, because flipping its sign silently could double-count.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from decimal import Decimal
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .budget import BUDGET_SIGN, adjusted_budget_fen, signed_amounts
from .ingest import IngestedTable, IngestError
from .money_fmt import fen_to_yuan_str
from .names import safe_name

SEVERITIES = ("fatal", "warning")
# How many failing rows per rule are listed (the count is always complete).
MAX_ROWS_PER_RULE = 20
_NATIVE_INT = ("Int64", "Int32")


# --------------------------------------------------------------------------- rules


@dataclass(frozen=True)
class Rule:
    rule_id: str
    table: str
    severity: str
    category: str
    columns: tuple[str, ...]
    prepare: str
    expectation: str
    kwargs: dict[str, Any]
    message_zh: str

    @property
    def parameters(self) -> tuple[str, ...]:
        """GX $PARAMETER names used by the kwargs."""
        return tuple(_params(self.kwargs))

    def needs(self) -> tuple[str, ...]:
        """ValidationContext fields this rule needs (skipped when missing)."""
        out: list[str] = []
        name, _, arg = self.prepare.partition(":")
        if name in _CONTEXT_ARG_PREPARES:
            out.append(arg)
        if self.prepare in ("in_year", "in_year_or_prior", "month_in_year") or "{fund_year}" in self.message_zh:
            out.append("fund_year")
        for p in self.parameters:
            out.append(_PARAM_NEEDS.get(p, p))
        return tuple(dict.fromkeys(out))


def _params(obj: Any) -> Iterable[str]:
    if isinstance(obj, dict):
        if set(obj) == {"$PARAMETER"}:
            yield obj["$PARAMETER"]
        else:
            for v in obj.values():
                yield from _params(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _params(v)


# GX parameter -> the ValidationContext field it is computed from.
_PARAM_NEEDS = {
    "goal_weight_milli": "execution_weight",
    "inspection_categories": "inspection_categories",
    "paid_units": "paid_by_unit",
    "paid_doc_nos": "paid_by_doc",
    "paid_pairs": "paid_by_pair",
}
# Prepare steps whose ``:arg`` names a ValidationContext field (the others'
# arg is about the table itself, e.g. the columns of a composite key).
_CONTEXT_ARG_PREPARES = frozenset({"isin", "covers_paid", "pair_in", "within", "cumulative_within"})


@cache
def load_rules() -> tuple[Rule, ...]:
    text = resources.files("budget_monitor").joinpath("rules/validation_rules.csv").read_text(encoding="utf-8")
    rules = []
    for rec in csv.DictReader(text.splitlines()):
        rule = Rule(
            rule_id=rec["rule_id"],
            table=rec["table"],
            severity=rec["severity"],
            category=rec["category"],
            columns=tuple(c for c in rec["column"].split("|") if c),
            prepare=rec["prepare"],
            expectation=rec["expectation"],
            kwargs=json.loads(rec["kwargs"] or "{}"),
            message_zh=rec["message_zh"],
        )
        if rule.severity not in SEVERITIES:
            raise ValueError(f"validation_rules.csv: {rule.rule_id}: bad severity {rule.severity!r}")
        if rule.prepare and rule.prepare.split(":")[0] not in _PREPARES:
            raise ValueError(f"validation_rules.csv: {rule.rule_id}: unknown prepare {rule.prepare!r}")
        rules.append(rule)
    ids = [r.rule_id for r in rules]
    if len(ids) != len(set(ids)):
        raise ValueError("validation_rules.csv: duplicate rule_id")
    return tuple(rules)


def rules_for(kind: str) -> tuple[Rule, ...]:
    return tuple(r for r in load_rules() if r.table == kind and r.expectation)


def rule(rule_id: str) -> Rule:
    for r in load_rules():
        if r.rule_id == rule_id:
            return r
    raise KeyError(rule_id)


# ------------------------------------------------------------------------- context


@dataclass(frozen=True)
class FileFacts:
    """What the file-level prepares know about a whole file validated chunk by
    chunk (a large CSV): gathered by :class:`ChunkedFile` before the chunks
    are validated, so that each chunk's verdicts are the whole file's.
    Keyed by the rule's column.
    """

    # ``unique``: the values the whole file holds more than once; None: judge
    # within the chunk (the single pass of a good file, see ChunkedFile).
    duplicates: Mapping[str, frozenset[str]] | None
    # ``cumulative_within``: the row of THIS chunk that fails (absent: none here).
    over_budget_row: Mapping[str, int]
    # The file's net amount (fen) before this chunk's first row, and in all.
    running_before: Mapping[str, int]
    file_net: Mapping[str, int]


@dataclass(frozen=True)
class ValidationContext:
    """What a table is checked against (from fund.yaml, the budget, the store).

    A field left None disables the rules that need it (listed in
    ``ValidationReport.skipped``), e.g. the budget itself is validated without
    known units.
    """

    fund_year: int | None = None
    units: frozenset[str] | None = None
    doc_nos: frozenset[str] | None = None
    # (指标文号, 预算单位) of every budget row: a payment must be charged to an
    # allocation of its own unit (PAY-012).
    pairs: frozenset[tuple[str, str]] | None = None
    inspection_categories: frozenset[str] | None = None
    goal_names: frozenset[str] | None = None
    execution_weight: Decimal | None = None
    # Net payments already stored for the fund, EXCLUDING voucher_nos that the
    # file being validated replaces (a corrected file must not count twice).
    stored_net_fen: int = 0
    adjusted_budget_fen: int | None = None
    # For a budget file (a corrected budget replaces the stored one): net stored
    # payments in fen per 预算单位 / per 指标文号, with an entry for EVERY unit /
    # doc_no that has stored payment rows (even when they net to 0). Each must
    # stay in the new budget (BUD-009/BUD-011) with 年初 + 追加 − 调减 ≥ its net
    # paid (BUD-010/BUD-012). None skips those rules; {} means nothing is paid yet.
    # (Left out of the hash: a dict is unhashable, the context stays hashable.)
    paid_by_unit: Mapping[str, int] | None = field(default=None, hash=False)
    paid_by_doc: Mapping[str, int] | None = field(default=None, hash=False)
    # ... and per allocation (指标文号, 预算单位), keyed by pair_key(): a
    # corrected budget must not move a paid doc_no to another unit (BUD-013).
    paid_by_pair: Mapping[str, int] | None = field(default=None, hash=False)
    # Files are named relative to this directory in messages.
    fund_dir: Path | None = None
    # Set only when a file is validated chunk by chunk (a large CSV, see
    # ChunkedFile): what the file-level rules need to know about the whole file.
    file_facts: FileFacts | None = field(default=None, hash=False)

    @classmethod
    def for_fund(
        cls,
        config: Any,
        *,
        fund_dir: Path | None = None,
        budget: pd.DataFrame | IngestedTable | None = None,
        goals: pd.DataFrame | IngestedTable | None = None,
        stored_net_fen: int = 0,
        paid_by_unit: Mapping[str, int] | None = None,
        paid_by_doc: Mapping[str, int] | None = None,
        paid_by_pair: Mapping[tuple[str, str], int] | None = None,
    ) -> ValidationContext:
        """Build from a FundConfig plus the (validated) budget and goals, and
        for a budget file the stored net payments per unit / doc_no."""
        bdf = budget.df if isinstance(budget, IngestedTable) else budget
        gdf = goals.df if isinstance(goals, IngestedTable) else goals
        pairs = None
        if bdf is not None:
            known = bdf[["doc_no", "unit"]].dropna()
            pairs = frozenset(zip(known["doc_no"], known["unit"], strict=True))
        return cls(
            fund_year=int(config.year),
            units=frozenset(bdf["unit"].dropna()) if bdf is not None else None,
            doc_nos=frozenset(bdf["doc_no"].dropna()) if bdf is not None else None,
            pairs=pairs,
            inspection_categories=frozenset(config.inspection_categories),
            goal_names=frozenset(gdf["name"].dropna()) if gdf is not None else None,
            execution_weight=Decimal(config.scoring.execution_weight),
            stored_net_fen=int(stored_net_fen),
            adjusted_budget_fen=adjusted_budget_fen(bdf) if bdf is not None else None,
            paid_by_unit=_int_map(paid_by_unit),
            paid_by_doc=_int_map(paid_by_doc),
            paid_by_pair=_int_map({pair_key(d, u): v for (d, u), v in paid_by_pair.items()})
            if paid_by_pair is not None
            else None,
            fund_dir=Path(fund_dir) if fund_dir is not None else None,
        )

    def has(self, name: str) -> bool:
        return getattr(self, name) is not None

    def gx_parameters(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.execution_weight is not None:
            out["goal_weight_milli"] = int((Decimal(100) - self.execution_weight) * 1000)
        if self.inspection_categories is not None:
            out["inspection_categories"] = sorted(self.inspection_categories)
        if self.paid_by_unit is not None:
            out["paid_units"] = sorted(self.paid_by_unit)
        if self.paid_by_doc is not None:
            out["paid_doc_nos"] = sorted(self.paid_by_doc)
        if self.paid_by_pair is not None:
            out["paid_pairs"] = sorted(self.paid_by_pair)
        return out


def _int_map(m: Mapping[str, int] | None) -> dict[str, int] | None:
    return None if m is None else {str(k): int(v) for k, v in m.items()}


# -------------------------------------------------------------------- prepare steps

Prepare = Callable[[IngestedTable, str, ValidationContext], np.ndarray]


def _filled(t: IngestedTable, col: str, ctx: ValidationContext) -> np.ndarray:
    return ~t.empty[col]


def _parsed(t: IngestedTable, col: str, ctx: ValidationContext) -> np.ndarray:
    return ~t.invalid[col]


def _isin(t: IngestedTable, col: str, ctx: ValidationContext, field_name: str) -> np.ndarray:
    s = t.df[col]
    allowed = getattr(ctx, field_name)
    return (s.isna() | (s == "") | s.isin(list(allowed))).to_numpy(dtype=bool)


def _unique(t: IngestedTable, col: str, ctx: ValidationContext) -> np.ndarray:
    s = t.df[col]
    if ctx.file_facts is not None and ctx.file_facts.duplicates is not None:
        # A chunk of a larger file: every row holding a value the WHOLE file holds twice fails.
        return (s.isna() | ~s.isin(list(ctx.file_facts.duplicates[col]))).to_numpy(dtype=bool)
    return (s.isna() | ~s.duplicated(keep=False)).to_numpy(dtype=bool)


def _between_years(t: IngestedTable, col: str, first: int, last: int) -> np.ndarray:
    s = t.df[col]
    lo = np.datetime64(f"{first:04d}-01-01", "s")
    hi = np.datetime64(f"{last:04d}-12-31", "s")
    v = s.to_numpy(dtype="datetime64[s]")
    return np.isnat(v) | ((v >= lo) & (v <= hi))


def _in_year(t: IngestedTable, col: str, ctx: ValidationContext) -> np.ndarray:
    return _between_years(t, col, ctx.fund_year, ctx.fund_year)


def _in_year_or_prior(t: IngestedTable, col: str, ctx: ValidationContext) -> np.ndarray:
    # Allocations are often issued in advance (提前下达) in the previous year.
    return _between_years(t, col, ctx.fund_year - 1, ctx.fund_year)


def _month_in_year(t: IngestedTable, col: str, ctx: ValidationContext) -> np.ndarray:
    s = t.df[col]
    return (s.isna() | s.str.startswith(f"{ctx.fund_year:04d}-")).to_numpy(dtype=bool)


def _negative_only_refund(t: IngestedTable, col: str, ctx: ValidationContext) -> np.ndarray:
    neg = (t.df[col] < 0).fillna(False).to_numpy(dtype=bool)
    return ~neg | (t.df["kind"] == "退回").to_numpy(dtype=bool)


def _refund_negative(t: IngestedTable, col: str, ctx: ValidationContext) -> np.ndarray:
    refund = (t.df["kind"] == "退回").to_numpy(dtype=bool)
    nonneg = (t.df[col] >= 0).fillna(False).to_numpy(dtype=bool)
    return ~(refund & nonneg)


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


def _amounts(t: IngestedTable, col: str) -> np.ndarray:
    """A money column as exact fen, null (unreadable, empty, out of range) as 0."""
    return exact_ints(t.df[col].fillna(0).astype("int64").to_numpy())


def _in_range(t: IngestedTable, col: str, ctx: ValidationContext) -> np.ndarray:
    too_big = t.out_of_range.get(col)
    return np.ones(t.n_rows, dtype=bool) if too_big is None else ~too_big


def _within(t: IngestedTable, col: str, ctx: ValidationContext, field_name: str) -> np.ndarray:
    """No single amount (a refund's neither) may exceed the budget in force."""
    limit = int(getattr(ctx, field_name))
    return np.abs(_amounts(t, col)) <= limit


def running_totals(t: IngestedTable, col: str, ctx: ValidationContext) -> np.ndarray:
    """Stored net paid + this file's running total after each row, exact (fen)."""
    return int(ctx.stored_net_fen) + np.cumsum(_amounts(t, col))


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


def _fits_store(t: IngestedTable, col: str, ctx: ValidationContext) -> np.ndarray:
    """Text no longer than the store's column: PostgreSQL refuses a longer
    value (varchar(n)) where SQLite would keep it, and the engines must agree."""
    limit = store_length(t.kind, col)
    s = t.df[col]
    if limit is None:
        return np.ones(len(s), dtype=bool)
    return (s.isna() | (s.astype(object).fillna("").str.len() <= limit)).to_numpy(dtype=bool)


@cache
def store_length(kind: str, col: str) -> int | None:
    """The store column's declared length (characters) for ``kind``'s ``col``, or None."""
    from .store import FACTS

    column = FACTS[kind].table.c.get(col)
    return getattr(column.type, "length", None) if column is not None else None


def _unique_with(t: IngestedTable, col: str, ctx: ValidationContext, others: str) -> np.ndarray:
    """``col`` plus the ``+``-separated ``others`` form a key that must be unique
    (e.g. the store's allocation key 指标文号 + 预算单位 + 类型). A row with a null
    key part passes: the completeness rule reports it."""
    key = t.df[[col, *others.split("+")]]
    return (key.isna().any(axis=1) | ~key.duplicated(keep=False)).to_numpy(dtype=bool)


def _group_budget(t: IngestedTable, col: str) -> pd.Series:
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
    short = [k for k, total in _group_budget(t, col).items() if k in paid and int(total) < paid[k]]
    return ~t.df[col].isin(short).to_numpy(dtype=bool)


PAIR_SEP = "｜"


def pair_key(doc_no: str, unit: str) -> str:
    """An allocation (指标文号, 预算单位) as one value, as the finance office reads it."""
    return f"{doc_no}{PAIR_SEP}{unit}"


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


_PREPARES: dict[str, Callable[..., np.ndarray]] = {
    "pair_key": _pair_key,
    "filled": _filled,
    "parsed": _parsed,
    "isin": _isin,
    "unique": _unique,
    "in_year": _in_year,
    "in_year_or_prior": _in_year_or_prior,
    "month_in_year": _month_in_year,
    "negative_only_refund": _negative_only_refund,
    "refund_negative": _refund_negative,
    "budget_signed": _budget_signed,
    "weight_milli": _weight_milli,
    "unique_with": _unique_with,
    "covers_paid": _covers_paid,
    "pair_in": _pair_in,
    "in_range": _in_range,
    "within": _within,
    "cumulative_within": _cumulative_within,
    "fits_store": _fits_store,
}


def _check_column(r: Rule, col: str) -> str:
    return f"{col}__{re.sub(r'[^0-9A-Za-z_]', '_', r.prepare)}" if r.prepare else col


def _prepare(t: IngestedTable, r: Rule, col: str, ctx: ValidationContext) -> np.ndarray:
    name, _, arg = r.prepare.partition(":")
    fn = _PREPARES[name]
    return fn(t, col, ctx, arg) if arg else fn(t, col, ctx)


def check_frame(t: IngestedTable, rules: Iterable[Rule], ctx: ValidationContext) -> pd.DataFrame:
    """The narrow frame GX validates: ``row`` + native and prepared columns."""
    cols: dict[str, Any] = {"row": t.df["row"].to_numpy()}
    for r in rules:
        for col in r.columns:
            name = _check_column(r, col)
            if name in cols:
                continue
            if r.prepare:
                cols[name] = _prepare(t, r, col, ctx)
            else:
                s = t.df[col]
                if str(s.dtype) in _NATIVE_INT:
                    # Null money is reported by the format rule; GX sums/bounds see 0.
                    cols[name] = s.fillna(0).astype("int64").to_numpy()
                elif str(s.dtype) == "str":
                    # Native text rules are value sets over few distinct values
                    # (业务类型, 检验结论 ...): GX's isin on a categorical is ~6x faster.
                    cols[name] = s.astype("category")
                else:
                    cols[name] = s
    return pd.DataFrame(cols, index=t.df.index)


# ------------------------------------------------------------------------- reports


@dataclass
class Failure:
    rule_id: str
    severity: str
    category: str
    column: str | None  # canonical column
    header: str | None  # the column's header as written in the file
    row: int | None  # 1-based file row; None for table/file-level rules
    value: str | None  # the raw cell text (or the observed aggregate)
    message: str  # full Chinese message: file, row, column, detail, rule

    def __post_init__(self) -> None:
        # One line whatever the file name or a cell holds (a newline, a
        # right-to-left override): escaped visibly, never interpreted.
        self.message = safe_name(self.message)


@dataclass
class ValidationReport:
    file: str  # as shown to the finance office (relative to the fund dir)
    path: str
    kind: str
    sha256: str
    n_rows: int
    failures: list[Failure] = field(default_factory=list)  # fatal
    warnings: list[Failure] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)  # rule_id -> failing rows (complete)
    skipped: list[str] = field(default_factory=list)  # rules not run (context missing)

    @property
    def ok(self) -> bool:
        return not self.failures

    def first_reason(self) -> str:
        """One line for stderr / the e-mail subject line body."""
        if not self.failures:
            return f"{self.file}: 校验通过"
        first = self.failures[0]
        more = sum(self.counts.get(r, 1) for r in dict.fromkeys(f.rule_id for f in self.failures)) - 1
        return first.message + (f"；另有 {more} 处错误" if more > 0 else "")

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "path": self.path,
            "kind": self.kind,
            "sha256": self.sha256,
            "n_rows": self.n_rows,
            "ok": self.ok,
            "reason": self.first_reason(),
            "counts": self.counts,
            "failures": [asdict(f) for f in self.failures],
            "warnings": [asdict(f) for f in self.warnings],
            "skipped": self.skipped,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=2)


def display_name(path: Path, fund_dir: Path | None) -> str:
    """The file as the finance office sees it (relative to the fund dir), escaped to one line."""
    path = Path(path)
    if fund_dir is not None:
        try:
            return safe_name(path.resolve().relative_to(Path(fund_dir).resolve()).as_posix())
        except ValueError:
            pass
    parent = path.parent.name
    return safe_name(f"{parent}/{path.name}" if parent in ("payments", "inspections", "outputs") else path.name)


def _where(file: str, row: int | None, header: str | None) -> str:
    at = file
    if row is not None:
        at += f" 第{row}行"
    if header:
        at += f" 列“{header}”"
    return at


def report_for_ingest_error(exc: IngestError, kind: str, ctx: ValidationContext | None = None) -> ValidationReport:
    """A rejected-file report for a file ingest could not read at all."""
    import hashlib

    path = Path(exc.path)
    try:
        with path.open("rb") as fh:  # in blocks: a rejected file may be large
            digest = hashlib.file_digest(fh, "sha256").hexdigest()
    except OSError:
        digest = ""
    file = display_name(path, ctx.fund_dir if ctx else None)
    detail = str(exc).split(": ", 1)[-1]
    r = rule(exc.rule_id)
    msg = f"{file}: {detail}（规则 {r.rule_id}）"
    fail = Failure(r.rule_id, r.severity, r.category, exc.column, None, None, None, msg)
    return ValidationReport(file, str(path), kind, digest, 0, [fail], [], {r.rule_id: 1}, [])


# ---------------------------------------------------------------------- GX runtime


class _GX:
    """One ephemeral GX context per process, with a suite per (kind, rule set)."""

    def __init__(self) -> None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self.gx = gx
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        self.source = self.context.data_sources.add_pandas("budget_monitor")
        self.asset = self.source.add_dataframe_asset("tables")
        self.batch_definition = self.asset.add_batch_definition_whole_dataframe("whole_file")
        self.definitions: dict[tuple[str, tuple[tuple[str, str], ...]], Any] = {}

    def definition(self, kind: str, rules: tuple[Rule, ...], only: frozenset[tuple[str, str]] | None = None) -> Any:
        """The ValidationDefinition of ``rules`` (cached); ``only`` keeps just
        those (rule_id, column) expectations (the second, row-finding pass)."""
        pairs = tuple((r.rule_id, c) for r in rules for c in r.columns if only is None or (r.rule_id, c) in only)
        key = (kind, pairs)
        if key not in self.definitions:
            suite_name = f"{kind}-{len(self.definitions)}"
            suite = self.context.suites.add(self.gx.ExpectationSuite(name=suite_name))
            by_id = {r.rule_id: r for r in rules}
            for rule_id, col in pairs:
                r = by_id[rule_id]
                cls = getattr(self.gx.expectations, r.expectation)
                meta = {"rule_id": r.rule_id, "column": col, "severity": r.severity}
                suite.add_expectation(cls(column=_check_column(r, col), meta=meta, **r.kwargs))
            vd = self.gx.ValidationDefinition(name=suite_name, data=self.batch_definition, suite=suite)
            self.definitions[key] = self.context.validation_definitions.add(vd)
        return self.definitions[key]


_RUNTIME: _GX | None = None


def gx_runtime() -> _GX:
    global _RUNTIME
    if _RUNTIME is None:
        _RUNTIME = _GX()
    return _RUNTIME


# Pass 1 over the whole file: counts, observed aggregates, a few failing values.
BASIC_FORMAT = {"result_format": "BASIC", "partial_unexpected_count": MAX_ROWS_PER_RULE}
# Pass 2 (bad files only) over the few rows that carry those values: row numbers.
RESULT_FORMAT = {
    "result_format": "SUMMARY",
    "unexpected_index_column_names": ["row"],
    "partial_unexpected_count": MAX_ROWS_PER_RULE,
    "return_unexpected_index_query": False,
}


def validate_table(table: IngestedTable, ctx: ValidationContext) -> ValidationReport:
    """Run the table kind's suite over the file; never raises on bad data.

    A good file costs one GX run (BASIC result format). A bad file gets a
    second run of the same suite over just the rows that carry the first
    failing values of each failed expectation, with SUMMARY and
    ``unexpected_index_column_names=["row"]``: GX 1.x builds its row index
    list with one ``DataFrame.at`` lookup per failing row before truncating
    it, which costs ~20 s on a 1M-row file where every row fails.
    """
    active_t, skipped = _active_rules(table.kind, ctx)
    report = _clean_report(table, ctx, skipped)
    file = report.file
    if not active_t:
        return report
    frame = check_frame(table, active_t, ctx)
    rt = gx_runtime()
    vd = rt.definition(table.kind, active_t)
    params = _parameters(ctx, active_t)
    result = vd.run(batch_parameters={"dataframe": frame}, expectation_parameters=params, result_format=BASIC_FORMAT)
    failed = [res for res in result.results if not res.success]
    if not failed:
        return report
    rows_by_key = _failing_rows(rt, table.kind, active_t, frame, failed, params)
    by_id = {r.rule_id: r for r in active_t}
    order = {r.rule_id: i for i, r in enumerate(active_t)}

    def key(res: Any) -> tuple[str, str]:
        return res.expectation_config.meta["rule_id"], res.expectation_config.meta["column"]

    failed.sort(key=lambda res: (order[key(res)[0]], by_id[key(res)[0]].columns.index(key(res)[1])))
    for res in failed:
        rule_id, column = key(res)
        _collect(report, by_id[rule_id], column, res, rows_by_key.get((rule_id, column)), table, ctx, file)
    # Row failures in file order within a rule, rules in table order.
    report.failures.sort(key=lambda f: (order[f.rule_id], f.row or 0))
    report.warnings.sort(key=lambda f: (order[f.rule_id], f.row or 0))
    return report


def _is_null(v: Any) -> bool:
    return v is None or (not isinstance(v, str) and bool(pd.isna(v)))


def _failing_rows(
    rt: _GX,
    kind: str,
    rules: tuple[Rule, ...],
    frame: pd.DataFrame,
    failed: list[Any],
    params: dict[str, Any],
) -> dict[tuple[str, str], list[int]]:
    """Second GX pass: the failed row-level expectations only, over the rows
    holding their failing values -> file row numbers per (rule_id, column)."""
    # Column-map expectations judge each value on its own, so the rows that
    # carry the failing values GX listed are failing rows.
    mask = np.zeros(len(frame), dtype=bool)
    wanted: set[tuple[str, str]] = set()
    for res in failed:
        r = res.result or {}
        if "unexpected_count" not in r or (res.exception_info or {}).get("raised_exception"):
            continue
        wanted.add((res.expectation_config.meta["rule_id"], res.expectation_config.meta["column"]))
        s = frame[res.expectation_config.kwargs["column"]]
        values = r.get("partial_unexpected_list") or []
        hit = s.isin([v for v in values if not _is_null(v)]).to_numpy(dtype=bool)
        if any(_is_null(v) for v in values):
            hit |= s.isna().to_numpy(dtype=bool)
        mask[np.flatnonzero(hit)[:MAX_ROWS_PER_RULE]] = True
    if not mask.any():
        return {}
    vd = rt.definition(kind, rules, frozenset(wanted))
    detail = vd.run(
        batch_parameters={"dataframe": frame[mask]}, expectation_parameters=params, result_format=RESULT_FORMAT
    )
    out: dict[tuple[str, str], list[int]] = {}
    for res in detail.results:
        items = (res.result or {}).get("partial_unexpected_index_list")
        if not res.success and items:
            meta = res.expectation_config.meta
            out[(meta["rule_id"], meta["column"])] = [int(i["row"]) for i in items]
    return out


def _active_rules(kind: str, ctx: ValidationContext) -> tuple[tuple[Rule, ...], list[str]]:
    """The kind's rules ``ctx`` can run, and a note per rule it cannot."""
    active, skipped = [], []
    for r in rules_for(kind):
        missing = [n for n in r.needs() if not ctx.has(n)]
        if missing:
            skipped.append(f"{r.rule_id}（缺少上下文：{'、'.join(missing)}）")
        else:
            active.append(r)
    return tuple(active), skipped


def _clean_report(table: IngestedTable, ctx: ValidationContext, skipped: list[str]) -> ValidationReport:
    """The report of ``table`` before any failure is collected (a file that passed)."""
    return ValidationReport(
        display_name(table.path, ctx.fund_dir), str(table.path), table.kind, table.sha256, table.n_rows, skipped=skipped
    )


def _parameters(ctx: ValidationContext, rules: Iterable[Rule]) -> dict[str, Any]:
    """The GX expectation parameters ``rules`` use, with ``ctx``'s values."""
    used = {p for r in rules for p in r.parameters}
    return {k: v for k, v in ctx.gx_parameters().items() if k in used}


# Files up to this many rows are validated together with the other small files
# of a batch; a larger file is validated on its own (its GX run is worth it, and
# the batch's row-finding pass must stay small).
BATCH_MAX_ROWS = 50_000
# Which file of the concatenated check frame a row came from.
_FILE_COLUMN = "__file__"
# Finds the files behind a batch's failed row-level expectations.
_FILES_FORMAT = {
    "result_format": "COMPLETE",
    "unexpected_index_column_names": [_FILE_COLUMN],
    "return_unexpected_index_query": False,
}


def _row_level(r: Rule) -> bool:
    """Does the rule judge each row on its own (a column-map expectation, no
    ``mostly``)? Such a rule gives every file of a concatenation the same
    verdict as a run over the file alone."""
    return _row_level_expectation(r.expectation) and "mostly" not in r.kwargs


@cache
def _row_level_expectation(name: str) -> bool:
    from great_expectations.expectations.expectation import ColumnMapExpectation

    return issubclass(getattr(gx_runtime().gx.expectations, name), ColumnMapExpectation)


def validate_batch(items: Sequence[tuple[IngestedTable, ValidationContext]]) -> list[ValidationReport]:
    """Validate many files; the same reports as :func:`validate_table` per file.

    Great Expectations costs ~10 ms per run plus ~12 ms per expectation,
    whatever the row count (bench/RESULTS.md R3): a monthly close of small
    files (three per fund, tens of rows each) spends most of its time there.
    So the small files of one kind that share their rule set and the
    parameters of their row-level rules are validated together:

    1. each file's check frame is prepared with its own context (uniqueness,
       the fund's units ... stay per file) and tagged with its position;
    2. one GX run of the row-level expectations over the concatenated frames
       (BASIC); only if something failed, a second run of the failed ones
       (COMPLETE, indexed by file) names the files holding failing rows;
    3. the table-level expectations (sums, sets a column must contain) run per
       file, with that file's parameters;
    4. a file named in 2 or failing 3 is validated again on its own by
       :func:`validate_table`, which builds the report (rows, messages) exactly
       as for a single file. Every other file passed the full suite.
    """
    reports: list[ValidationReport | None] = [None] * len(items)
    rules = [_active_rules(table.kind, ctx) for table, ctx in items]
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i, ((table, ctx), (active, _)) in enumerate(zip(items, rules, strict=True)):
        if not active or table.n_rows > BATCH_MAX_ROWS:
            continue
        row_params = _parameters(ctx, (r for r in active if _row_level(r)))
        key = (
            table.kind,
            tuple(r.rule_id for r in active),
            json.dumps(row_params, sort_keys=True, ensure_ascii=False, default=str),
        )
        groups.setdefault(key, []).append(i)
    for (kind, _, _), members in groups.items():
        if len(members) < 2:
            continue
        active = rules[members[0]][0]
        for i, passed in zip(members, _batch_verdicts(kind, active, [items[i] for i in members]), strict=True):
            if passed:
                reports[i] = _clean_report(*items[i], rules[i][1])
    return [r if r is not None else validate_table(*items[i]) for i, r in enumerate(reports)]


def _batch_verdicts(
    kind: str,
    active: tuple[Rule, ...],
    items: list[tuple[IngestedTable, ValidationContext]],
) -> list[bool]:
    """Per file: did it pass every expectation of ``active`` (steps 1-3 of :func:`validate_batch`)?"""
    rt = gx_runtime()
    frames = [check_frame(t, active, ctx) for t, ctx in items]
    passed = [True] * len(items)
    row_rules = tuple(r for r in active if _row_level(r))
    if row_rules:
        tagged = [f.assign(**{_FILE_COLUMN: n}) for n, f in enumerate(frames)]
        batch = pd.concat(tagged, ignore_index=True)
        params = _parameters(items[0][1], row_rules)  # the same for the whole group
        run = rt.definition(kind, active, _pairs(row_rules)).run(
            batch_parameters={"dataframe": batch}, expectation_parameters=params, result_format=BASIC_FORMAT
        )
        failed = [res for res in run.results if not res.success]
        if failed:
            for n in _failing_files(rt, kind, active, batch, failed, params, len(items)):
                passed[n] = False
    table_rules = tuple(r for r in active if not _row_level(r))
    if table_rules:
        for n, (frame, (_, ctx)) in enumerate(zip(frames, items, strict=True)):
            if not passed[n]:
                continue  # validated again on its own anyway
            run = rt.definition(kind, active, _pairs(table_rules)).run(
                batch_parameters={"dataframe": frame},
                expectation_parameters=_parameters(ctx, table_rules),
                result_format=BASIC_FORMAT,
            )
            passed[n] = bool(run.success)
    return passed


def _pairs(rules: Iterable[Rule]) -> frozenset[tuple[str, str]]:
    return frozenset((r.rule_id, c) for r in rules for c in r.columns)


def _failing_files(
    rt: _GX,
    kind: str,
    active: tuple[Rule, ...],
    batch: pd.DataFrame,
    failed: list[Any],
    params: dict[str, Any],
    n_files: int,
) -> set[int]:
    """The files (positions) holding rows that failed a row-level expectation."""
    if any((res.exception_info or {}).get("raised_exception") for res in failed):
        return set(range(n_files))  # no row verdicts to go by: every file on its own
    wanted = frozenset(
        (res.expectation_config.meta["rule_id"], res.expectation_config.meta["column"]) for res in failed
    )
    run = rt.definition(kind, active, wanted).run(
        batch_parameters={"dataframe": batch}, expectation_parameters=params, result_format=_FILES_FORMAT
    )
    files: set[int] = set()
    for res in run.results:
        if res.success:
            continue
        index = (res.result or {}).get("unexpected_index_list")
        if index is None:
            return set(range(n_files))
        files.update(int(item[_FILE_COLUMN]) for item in index)
    return files


def validate_many(
    items: Iterable[tuple[IngestedTable, ValidationContext]],
) -> list[ValidationReport]:
    """Validate several files in one process (the GX context is shared)."""
    return validate_batch(list(items))


# --------------------------------------------------------- files read in chunks


class ChunkedFile:
    """The file-level rules of one file validated chunk by chunk (ingest.CsvStream).

    Row-level rules judge each row on its own, so a chunk's verdicts on them
    are the whole file's. Two prepares look at the whole file: ``unique``
    (every row of a value held twice fails) and ``cumulative_within`` (the
    row at which stored + running total first exceeds the budget fails, and
    only when the file's total exceeds it, so a later refund can bring the
    file back under).

    A good file is read once (:meth:`first_pass_context`): each chunk is
    judged as if no key repeated across chunks and the file stayed within
    the budget, while the keys' hashes and the running total are kept; the
    file passed exactly when every chunk passed, no key hash came back in a
    later chunk and the final total is within the budget
    (:meth:`over_budget`). Otherwise the exact passes settle both rules
    before the chunks are validated again:

    1. :meth:`scan` (pass 1, every chunk of :attr:`columns`, blank records
       included): a ``unique`` column's non-null values are hashed into 8
       bytes a row (Python's str hash, valid in this process only) and a
       ``cumulative_within`` column is summed exactly (Python ints).
    2. :meth:`candidates`: hashes seen twice. Only when there are any,
       :meth:`resolve` (another scan of those columns) counts the values
       behind them exactly, so a hash collision never fails a row.
    3. :meth:`context` (pass 2, chunk tables in file order): the chunk's
       context with :class:`FileFacts`; the over-budget row is looked for
       chunk after chunk with the running total carried over.

    Memory: 8 bytes per keyed row for the hashes, dropped after step 2.
    """

    def __init__(self, kind: str, ctx: ValidationContext) -> None:
        active, _ = _active_rules(kind, ctx)
        self.unique = tuple(dict.fromkeys(c for r in active if r.prepare == "unique" for c in r.columns))
        self.cumulative = {
            c: r.prepare.partition(":")[2]
            for r in active
            if r.prepare.partition(":")[0] == "cumulative_within"
            for c in r.columns
        }
        self.file_net = {c: 0 for c in self.cumulative}
        self._hashes: dict[str, list[np.ndarray]] = {c: [] for c in self.unique}
        self._candidates: dict[str, np.ndarray] = {}
        self._counts: dict[str, dict[str, int]] = {c: {} for c in self.unique}
        # duplicate value -> how many scan chunks hold it (pipeline: stored amounts counted once)
        self._chunks: dict[str, dict[str, int]] = {c: {} for c in self.unique}
        self._duplicates: dict[str, frozenset[str]] | None = None
        self._before = {c: 0 for c in self.cumulative}
        self._found: set[str] = set()
        self._seen: dict[str, list[np.ndarray]] = {c: [] for c in self.unique}  # sorted, per chunk

    @property
    def columns(self) -> tuple[str, ...]:
        """The canonical columns pass 1 reads."""
        return tuple(dict.fromkeys((*self.unique, *self.cumulative)))

    def scan(self, chunk: pd.DataFrame) -> None:
        for c in self.unique:
            self._hashes[c].append(_hashes(chunk[c].dropna().tolist()))
        for c in self.cumulative:
            self.file_net[c] += int(exact_ints(chunk[c].fillna(0).astype("int64").to_numpy()).sum())

    def candidates(self) -> bool:
        """End of pass 1: is there any hash seen twice (then :meth:`resolve` is needed)?"""
        for c, parts in self._hashes.items():
            h = np.sort(np.concatenate(parts)) if parts else np.empty(0, dtype=np.int64)
            self._candidates[c] = np.unique(h[1:][h[1:] == h[:-1]])
        self._hashes = {}
        return any(len(v) for v in self._candidates.values())

    def resolve(self, chunk: pd.DataFrame) -> None:
        """Pass 1b: the chunk of the ``unique`` columns again (same chunking as :meth:`scan`)."""
        for c, wanted in self._candidates.items():
            if not len(wanted):
                continue
            values = chunk[c].dropna().tolist()
            hit = np.isin(_hashes(values), wanted).tolist()
            counts, chunks = self._counts[c], self._chunks[c]
            found = [v for v, h in zip(values, hit, strict=True) if h]
            for v in found:
                counts[v] = counts.get(v, 0) + 1
            for v in set(found):
                chunks[v] = chunks.get(v, 0) + 1

    @property
    def duplicates(self) -> dict[str, frozenset[str]]:
        if self._duplicates is None:
            self._duplicates = {c: frozenset(v for v, n in self._counts[c].items() if n > 1) for c in self.unique}
        return self._duplicates

    def chunks_holding(self, column: str) -> dict[str, int]:
        """Each duplicate value of ``column`` -> how many scan chunks hold it."""
        return {v: self._chunks[column][v] for v in self.duplicates.get(column, ())}

    def first_pass_context(self, table: IngestedTable, ctx: ValidationContext) -> ValidationContext | None:
        """The single pass of a good file: ``ctx`` for the next chunk (in file
        order) judging keys within the chunk and passing the cumulative rule,
        or None when a key of this chunk hashes like a key of an earlier one
        (a duplicate, or a clash of hashes: the exact passes tell)."""
        for c in self.unique:
            hashes = np.sort(_hashes(table.df[c].dropna().tolist()))
            for seen in self._seen[c]:
                at = np.minimum(np.searchsorted(seen, hashes), len(seen) - 1)
                if bool((seen[at] == hashes).any()):
                    return None
            if len(hashes):
                self._seen[c].append(hashes)
        before: dict[str, int] = {}
        for c in self.cumulative:
            before[c] = self._before[c]
            self._before[c] += int(_amounts(table, c).sum())
        # duplicates=None: keys are judged within the chunk (as _unique judges a whole file)
        return replace(ctx, file_facts=FileFacts(None, {}, before, {}))

    def over_budget(self, ctx: ValidationContext) -> bool:
        """After the single pass: does stored + the file's total exceed a cumulative rule's limit?"""
        return any(int(ctx.stored_net_fen) + self._before[c] > int(getattr(ctx, f)) for c, f in self.cumulative.items())

    def context(self, table: IngestedTable, ctx: ValidationContext) -> ValidationContext:
        """``ctx`` for the next chunk of pass 2 (call for every chunk, in file order)."""
        over: dict[str, int] = {}
        before: dict[str, int] = {}
        for c, field_name in self.cumulative.items():
            amounts = _amounts(table, c)
            before[c] = self._before[c]
            self._before[c] += int(amounts.sum())
            limit, stored = int(getattr(ctx, field_name)), int(ctx.stored_net_fen)
            if c in self._found or stored + self.file_net[c] <= limit:
                continue
            # stored + before + running > limit, compared with Python ints (no int64 wrap)
            hits = np.flatnonzero(np.cumsum(amounts) > limit - stored - before[c])
            if len(hits):
                over[c] = int(table.df["row"].iloc[int(hits[0])])
                self._found.add(c)
        return replace(ctx, file_facts=FileFacts(self.duplicates, over, before, dict(self.file_net)))


class ChunkVerdicts:
    """The single pass's verdict on consecutive chunks in one Great Expectations
    run: GX costs ~10 ms a run plus ~12 ms an expectation whatever the rows
    (bench/RESULTS.md R3), so a GX run per chunk added ~1.5 s per million rows.

    Each chunk's check frame (the narrow frame GX reads: 29 bytes a row for
    payments) is kept until :meth:`passed` validates them together; the
    caller calls it once :attr:`GROUP_ROWS` rows wait (500,000: ~15 MiB of
    frames, twice that while concatenated; 1M rows took the 200 MB file's
    peak from 394 to 474 MiB in bench stage g). Only for rule
    sets whose every rule judges rows one by one (:func:`_row_level`), so
    the concatenation's verdict is each chunk's; :attr:`usable` says so.
    Passing means no failure of any severity: a file with a warning, like a
    failing one, goes to the exact passes, which report it chunk by chunk.
    """

    GROUP_ROWS = 500_000

    def __init__(self, kind: str, ctx: ValidationContext) -> None:
        self.kind = kind
        self.active, self.skipped = _active_rules(kind, ctx)
        self.usable = bool(self.active) and all(_row_level(r) for r in self.active)
        self.params = _parameters(ctx, self.active)
        self.rows = 0  # rows waiting for a verdict
        self.n_rows = 0  # rows seen in all
        self._frames: list[pd.DataFrame] = []
        self._file: tuple[str, str, str] | None = None  # display name, path, sha256

    def add(self, table: IngestedTable, ctx: ValidationContext) -> None:
        if self._file is None:
            self._file = (display_name(table.path, ctx.fund_dir), str(table.path), table.sha256)
        self._frames.append(check_frame(table, self.active, ctx))
        self.rows += table.n_rows
        self.n_rows += table.n_rows

    def passed(self) -> bool:
        """Did every row added since the last call pass every expectation?"""
        if not self._frames:
            return True
        frame = pd.concat(self._frames, ignore_index=True) if len(self._frames) > 1 else self._frames[0]
        self._frames, self.rows = [], 0
        run = (
            gx_runtime()
            .definition(self.kind, self.active)
            .run(batch_parameters={"dataframe": frame}, expectation_parameters=self.params, result_format=BASIC_FORMAT)
        )
        return bool(run.success)

    def report(self) -> ValidationReport:
        """The report of a file every chunk of which passed (validate_table's, merged)."""
        assert self._file is not None, "ChunkVerdicts.report before any chunk"
        name, path, sha = self._file
        return ValidationReport(name, path, self.kind, sha, self.n_rows, skipped=list(self.skipped))


def _hashes(values: list[Any]) -> np.ndarray:
    return np.fromiter(map(hash, values), dtype=np.int64, count=len(values))


def merge_reports(parts: Sequence[ValidationReport]) -> ValidationReport:
    """One report from the reports of a file's chunks (in file order), as
    :func:`validate_table` reports the whole file: counts summed, per rule and
    column the first MAX_ROWS_PER_RULE failing rows, rules in table order, rows
    in file order. A failure without a row (a check that crashed) is kept once."""
    first = parts[0]
    out = ValidationReport(
        first.file, first.path, first.kind, first.sha256, sum(p.n_rows for p in parts), skipped=list(first.skipped)
    )
    order = {r.rule_id: i for i, r in enumerate(rules_for(first.kind))}
    for attr in ("failures", "warnings"):
        taken: dict[tuple[str, str | None], int] = {}
        merged: list[Failure] = []
        for p in parts:
            for f in getattr(p, attr):
                key = (f.rule_id, f.column)
                limit = 1 if f.row is None else MAX_ROWS_PER_RULE
                if taken.get(key, 0) >= limit:
                    continue
                taken[key] = taken.get(key, 0) + 1
                merged.append(f)
        merged.sort(key=lambda f: (order.get(f.rule_id, len(order)), f.row or 0))  # stable, as validate_table
        setattr(out, attr, merged)
    for p in parts:
        for rule_id, n in p.counts.items():
            out.counts[rule_id] = out.counts.get(rule_id, 0) + n
    return out


def _fmt(template: str, values: dict[str, Any]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: str(values.get(m.group(1), m.group(0))), template)


def _collect(
    report: ValidationReport,
    r: Rule,
    column: str,
    res: Any,
    rows: list[int] | None,
    table: IngestedTable,
    ctx: ValidationContext,
    file: str,
) -> None:
    header = table.header_of(column)
    target = report.failures if r.severity == "fatal" else report.warnings
    values: dict[str, Any] = {
        "fund_year": ctx.fund_year,
        "execution_weight": _points(int(ctx.execution_weight * 1000)) if ctx.execution_weight is not None else "",
        "stored_yuan": fen_to_yuan_str(ctx.stored_net_fen),
        "budget_yuan": fen_to_yuan_str(ctx.adjusted_budget_fen) if ctx.adjusted_budget_fen is not None else "",
        "header": header,
    }
    info = res.exception_info or {}
    if info.get("raised_exception"):
        msg = f"{_where(file, None, header)}: 校验规则执行出错：{info.get('exception_message')}（规则 {r.rule_id}）"
        target.append(Failure(r.rule_id, r.severity, r.category, column, header, None, None, msg))
        report.counts[r.rule_id] = report.counts.get(r.rule_id, 0) + 1
        return
    result = res.result or {}
    if "partial_missing_list" in result:
        # A set the column must contain (e.g. every unit with stored payments):
        # one failure per missing value, with its amount where the set comes
        # from a {value: fen} context field.
        count = int(result.get("missing_count") or 0)
        report.counts[r.rule_id] = report.counts.get(r.rule_id, 0) + count
        amounts: Mapping[str, int] = {}
        for p in r.parameters:
            src = getattr(ctx, _PARAM_NEEDS.get(p, p), None)
            if isinstance(src, Mapping):
                amounts = src
        for missing in (result.get("partial_missing_list") or [])[:MAX_ROWS_PER_RULE]:
            fen = amounts.get(missing)
            extra = {"value": missing, "paid_yuan": fen_to_yuan_str(fen) if fen is not None else ""}
            detail = _fmt(r.message_zh, {**values, **extra})
            msg = f"{_where(file, None, header)}: {detail}（规则 {r.rule_id}）"
            target.append(Failure(r.rule_id, r.severity, r.category, column, header, None, str(missing), msg))
        return
    if "unexpected_count" not in result:
        # Table-level (aggregate) expectation: no row, the observed value.
        observed = result.get("observed_value")
        values["observed"] = observed
        if isinstance(observed, (int, np.integer)):
            values["observed_yuan"] = fen_to_yuan_str(int(observed))
            values["observed_points"] = _points(int(observed))
        detail = _fmt(r.message_zh, values)
        msg = f"{_where(file, None, header)}: {detail}（规则 {r.rule_id}）"
        target.append(Failure(r.rule_id, r.severity, r.category, column, header, None, str(observed), msg))
        report.counts[r.rule_id] = report.counts.get(r.rule_id, 0) + 1
        return
    count = int(result.get("unexpected_count") or 0)
    report.counts[r.rule_id] = report.counts.get(r.rule_id, 0) + count
    if not rows:
        # Never let a failed expectation pass silently for want of row numbers.
        values["value"] = "、".join(str(v) for v in (result.get("partial_unexpected_list") or [])[:3])
        detail = _fmt(r.message_zh, values)
        msg = f"{_where(file, None, header)}: {detail}（共 {count} 行，规则 {r.rule_id}）"
        target.append(Failure(r.rule_id, r.severity, r.category, column, header, None, values["value"], msg))
        return
    row_values = _ROW_VALUES.get(r.prepare.partition(":")[0])
    extra_cols = re.findall(r"\{raw_(\w+)\}", r.message_zh)
    for row in rows[:MAX_ROWS_PER_RULE]:
        raw = table.raw_value(column, row)
        more = {f"raw_{c}": table.raw_value(c, row) for c in extra_cols}
        if row_values is not None:
            more.update(row_values(table, r, column, row, ctx))
        detail = _fmt(r.message_zh, {**values, **more, "value": raw})
        msg = f"{_where(file, row, header)}: {detail}（规则 {r.rule_id}）"
        target.append(Failure(r.rule_id, r.severity, r.category, column, header, row, raw, msg))


def _paid_values(table: IngestedTable, r: Rule, column: str, row: int, ctx: ValidationContext) -> dict[str, str]:
    """{group_budget_yuan} and {paid_yuan} of a covers_paid failure's row."""
    key = table.df.at[row, column]
    paid: Mapping[str, int] = getattr(ctx, r.prepare.partition(":")[2]) or {}
    totals = _group_budget(table, column)
    out = {"group_budget_yuan": "", "paid_yuan": ""}
    if key in totals.index:
        out["group_budget_yuan"] = fen_to_yuan_str(int(totals[key]))
    if key in paid:
        out["paid_yuan"] = fen_to_yuan_str(int(paid[key]))
    return out


def _running_values(table: IngestedTable, r: Rule, column: str, row: int, ctx: ValidationContext) -> dict[str, str]:
    """{running_yuan} (this file's net up to ``row``) and {file_yuan} of a PAY-011 failure."""
    running = np.cumsum(_amounts(table, column))  # exact: int64 only where no sum can wrap
    at = int(np.flatnonzero(table.df["row"].to_numpy() == row)[0])
    facts = ctx.file_facts
    before = facts.running_before.get(column, 0) if facts is not None else 0
    total = facts.file_net[column] if facts is not None else int(running[-1])
    return {"running_yuan": fen_to_yuan_str(before + int(running[at])), "file_yuan": fen_to_yuan_str(total)}


def _length_values(table: IngestedTable, r: Rule, column: str, row: int, ctx: ValidationContext) -> dict[str, str]:
    value = table.df.at[row, column]
    return {
        "length": str(len(value)) if isinstance(value, str) else "",
        "max_length": str(store_length(table.kind, column) or ""),
    }


# Per-row message values that a prepare step's rule needs beyond the cell itself.
_ROW_VALUES: dict[str, Callable[[IngestedTable, Rule, str, int, ValidationContext], dict[str, str]]] = {
    "covers_paid": _paid_values,
    "cumulative_within": _running_values,
    "fits_store": _length_values,
}


def _points(milli: int) -> str:
    return format(Decimal(milli) / 1000, "f").rstrip("0").rstrip(".") if milli % 1000 else str(milli // 1000)


# ------------------------------------------------------------------------ data docs


def build_data_docs(
    out_dir: Path,
    items: Iterable[tuple[IngestedTable, ValidationContext]] | None = None,
    *,
    fund_dir: Path | None = None,
) -> Path:
    """Build Great Expectations Data Docs (HTML the finance office can open).

    A file-backed GX project is kept under ``out_dir`` (``gx/``), the site under
    ``out_dir/data_docs/index.html`` (returned). It always shows the suite of
    every table kind (the rules, with their Chinese messages in ``meta``) and
    a validation page for each ``(table, ctx)`` of ``items``; with
    ``fund_dir`` every file of that fund directory is read and validated
    against its fund.yaml, budget and goals. Not on the hot path (it re-runs
    the suites through Checkpoints with an UpdateDataDocsAction).
    """
    import great_expectations as gx
    from great_expectations.checkpoint import UpdateDataDocsAction
    from great_expectations.data_context.types.base import ProgressBarsConfig

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    context = gx.get_context(mode="file", project_root_dir=str(out_dir))
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    site = "budget_monitor_site"
    if site not in (context.get_site_names() or []):
        context.add_data_docs_site(
            site_name=site,
            site_config={
                "class_name": "SiteBuilder",
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(out_dir / "data_docs"),
                },
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )
    try:
        source = context.data_sources.get("budget_monitor")
    except (KeyError, ValueError, LookupError):
        source = context.data_sources.add_pandas("budget_monitor")

    def suite_for(name: str, rules: tuple[Rule, ...]) -> Any:
        suite = gx.ExpectationSuite(name=name, meta={"notes": "规则来自 rules/validation_rules.csv"})
        for r in rules:
            cls = getattr(gx.expectations, r.expectation)
            for col in r.columns:
                meta = {"rule_id": r.rule_id, "severity": r.severity, "column": col, "message_zh": r.message_zh}
                suite.add_expectation(cls(column=_check_column(r, col), meta=meta, **r.kwargs))
        return context.suites.add_or_update(suite)

    for kind in ("goals", "budget", "payments", "inspections", "outputs"):
        suite_for(f"{kind}_rules", rules_for(kind))

    work = list(items or [])
    if fund_dir is not None:
        work.extend(_fund_items(Path(fund_dir)))
    for table, ctx in work:
        active = tuple(r for r in rules_for(table.kind) if all(ctx.has(x) for x in r.needs()))
        name = re.sub(r"[^0-9A-Za-z_-]+", "_", f"{table.kind}_{table.path.stem}_{table.sha256[:8]}")
        try:
            asset = source.get_asset(name)
        except (KeyError, ValueError, LookupError):
            asset = source.add_dataframe_asset(name)
        try:
            bd = asset.get_batch_definition("whole_file")
        except (KeyError, ValueError, LookupError):
            bd = asset.add_batch_definition_whole_dataframe("whole_file")
        suite = suite_for(name, active)
        vd = context.validation_definitions.add_or_update(gx.ValidationDefinition(name=name, data=bd, suite=suite))
        cp = context.checkpoints.add_or_update(
            gx.Checkpoint(
                name=name,
                validation_definitions=[vd],
                actions=[UpdateDataDocsAction(name="docs", site_names=[site])],
                result_format=RESULT_FORMAT,
            )
        )
        params = {k: v for k, v in ctx.gx_parameters().items() if any(k in r.parameters for r in active)}
        cp.run(batch_parameters={"dataframe": check_frame(table, active, ctx)}, expectation_parameters=params)
    context.build_data_docs(site_names=[site])
    return out_dir / "data_docs" / "index.html"


def _fund_items(fund_dir: Path) -> list[tuple[IngestedTable, ValidationContext]]:
    """Every readable table file of a fund directory with its context."""
    from .config import load_fund_config
    from .ingest import read_table
    from .sources import FACT_KINDS, SNAPSHOT_FILES, fund_files

    cfg = load_fund_config(fund_dir)
    # The same file selection as the monthly load (no ~$ lock files, no dot files).
    files = fund_files(fund_dir)
    tables: dict[str, IngestedTable] = {}
    for kind in SNAPSHOT_FILES:
        for p in files.get(kind, [])[:1]:
            try:
                tables[kind] = read_table(p, kind)
            except IngestError:
                pass
    ctx = ValidationContext.for_fund(cfg, fund_dir=fund_dir, budget=tables.get("budget"), goals=tables.get("goals"))
    out = [(t, ctx) for t in tables.values()]
    for kind in FACT_KINDS:
        for p in files.get(kind, []):
            try:
                out.append((read_table(p, kind), ctx))
            except IngestError:
                continue
    return out
