"""The finance office's sign-off of a year-end report.

The year-end run first writes a draft (marked 草稿, never mailed); the
approver approves or sends it back with a comment. Only an approved year
becomes final and is mailed; who approved it and when is written into the
report's provenance. Every decision is kept (table ``approval``): a draft
sent back and approved after a correction shows both, and the latest
decision is the one in force.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, insert, select

from budget_monitor import store

APPROVED, REJECTED = "approved", "rejected"
LABELS = {APPROVED: "批准", REJECTED: "退回"}


@dataclass(frozen=True)
class Decision:
    fund_code: str
    year: int
    decision: str
    decided_by: str
    decided_at: datetime
    comment: str | None = None
    draft_sha256: str | None = None

    @property
    def approved(self) -> bool:
        return self.decision == APPROVED

    def provenance(self) -> dict[str, Any]:
        """The approval as self_evaluation.json carries it."""
        return {
            "decision": self.decision,
            "decided_by": self.decided_by,
            "decided_at": self.decided_at.isoformat(timespec="seconds"),
            "comment": self.comment or "",
            "draft_sha256": self.draft_sha256 or "",
        }


def decide(
    engine: Engine,
    fund_code: str,
    year: int,
    decision: str,
    *,
    by: str,
    comment: str = "",
    at: datetime | None = None,
    draft_sha256: str | None = None,
) -> Decision:
    """Record a decision on the fund-year's draft."""
    if decision not in LABELS:
        raise ValueError(f"decision must be one of {sorted(LABELS)}: {decision!r}")
    if decision == REJECTED and not comment.strip():
        raise ValueError("退回须填写意见")
    row = Decision(fund_code, year, decision, by[:200], at or store.now_local(), comment.strip() or None, draft_sha256)
    with engine.begin() as conn:
        conn.execute(
            insert(store.approval).values(
                fund_code=row.fund_code,
                year=row.year,
                decision=row.decision,
                decided_by=row.decided_by,
                decided_at=row.decided_at,
                comment=row.comment,
                draft_sha256=row.draft_sha256,
            )
        )
    return row


def history(engine: Engine, fund_code: str, year: int) -> list[Decision]:
    """Every decision on the fund-year, oldest first."""
    t = store.approval
    with engine.connect() as conn:
        rows = conn.execute(
            select(t).where(t.c.fund_code == fund_code, t.c.year == year).order_by(t.c.decided_at, t.c.id)
        ).mappings()
        return [Decision(**{k: r[k] for k in Decision.__dataclass_fields__}) for r in rows]


def latest(engine: Engine, fund_code: str, year: int) -> Decision | None:
    """The decision in force, or None while the draft waits."""
    found = history(engine, fund_code, year)
    return found[-1] if found else None
