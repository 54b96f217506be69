"""The budget arithmetic shared by validation and execution.

全年预算数 = 年初 + 追加 − 调减: an allocation row counts with the sign of its
类型 (a 调减 is written as a positive amount and subtracted).
"""

from __future__ import annotations

from types import MappingProxyType

import numpy as np
import pandas as pd

BUDGET_SIGN = MappingProxyType({"年初": 1, "追加": 1, "调减": -1})


def budget_signs(kind: pd.Series) -> np.ndarray:
    """+1 / −1 per row by 类型; 0 for an unknown or missing kind (int64)."""
    return kind.map(dict(BUDGET_SIGN)).fillna(0).astype("int64").to_numpy()


def signed_amounts(kind: pd.Series, amount_fen: pd.Series) -> np.ndarray:
    """Each allocation row's signed amount in fen (int64); null amounts and
    unknown kinds count 0."""
    return amount_fen.fillna(0).astype("int64").to_numpy() * budget_signs(kind)


def adjusted_budget_fen(budget: pd.DataFrame) -> int:
    """全年预算数 = 年初 + 追加 − 调减 of a budget frame (unknown kinds count 0)."""
    # Python ints: a numpy int64 sum wraps silently on absurd amounts.
    return sum(signed_amounts(budget["kind"], budget["amount_fen"]).tolist())


def totals_by_source(
    budget: pd.DataFrame, paid_by_doc: dict[str, int], sources: dict[str, str]
) -> dict[str, tuple[int, int, int]]:
    """(年初, 全年预算数, 执行数) fen per funding source of the documents tagged in
    ``sources`` (指标文号 -> source, fund.yaml self_evaluation.fund_sources);
    untagged documents are left to the caller (当年财政拨款 = total − tagged)."""
    out: dict[str, list[int]] = {}
    if sources and not budget.empty:
        signed = signed_amounts(budget["kind"], budget["amount_fen"]).tolist()
        for doc, kind, amount, s in zip(budget["doc_no"], budget["kind"], budget["amount_fen"], signed):
            source = sources.get(str(doc))
            if source is None:
                continue
            row = out.setdefault(source, [0, 0, 0])
            row[0] += int(amount) if kind == "年初" else 0
            row[1] += int(s)
    for doc, source in sources.items():
        if doc in paid_by_doc:
            out.setdefault(source, [0, 0, 0])[2] += int(paid_by_doc[doc])
    return {k: (v[0], v[1], v[2]) for k, v in out.items()}
