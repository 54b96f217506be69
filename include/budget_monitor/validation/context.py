"""What a table is checked against: :class:`ValidationContext` (fund.yaml, the
budget, the store) and, for a file read in chunks, :class:`FileFacts`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd

from ..budget import adjusted_budget_fen
from ..ingest import IngestedTable

PAIR_SEP = "｜"


def pair_key(doc_no: str, unit: str) -> str:
    """An allocation (指标文号, 预算单位) as one value, as the finance office reads it."""
    return f"{doc_no}{PAIR_SEP}{unit}"


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
        """The GX suite parameters (``$PARAMETER`` names of the rules table) this context fills."""
        out: dict[str, Any] = {}
        for name in ("units", "doc_nos", "goal_names"):
            values = getattr(self, name)
            if values is not None:
                out[name] = sorted(values)
        if self.fund_year is not None:
            y = self.fund_year
            out["fund_months"] = [f"{y:04d}-{m:02d}" for m in range(1, 13)]
            # ISO date-times (GX would read a bare date as a date, which a datetime column refuses to
            # compare with); dates are at midnight. Text keeps the parameters JSON for Data Docs.
            out["year_first_day"], out["year_last_day"] = f"{y:04d}-01-01T00:00:00", f"{y:04d}-12-31T00:00:00"
            out["prior_year_first_day"] = f"{y - 1:04d}-01-01T00:00:00"
        if self.adjusted_budget_fen is not None:
            out["budget_fen"], out["budget_fen_negated"] = int(self.adjusted_budget_fen), -int(self.adjusted_budget_fen)
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
