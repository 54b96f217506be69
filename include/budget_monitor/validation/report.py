"""Validation reports: :class:`Failure` (one Chinese line naming file, row,
column and rule) and :class:`ValidationReport` (a file's verdict, as the
quarantine writes it to ``<name>.report.json``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..ingest import IngestError
from ..kinds import FACT_FOLDERS
from ..names import safe_name
from .context import ValidationContext
from .rules import rule, rules_for

# How many failing rows per rule are listed (the count is always complete).
MAX_ROWS_PER_RULE = 20


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
    return safe_name(f"{parent}/{path.name}" if parent in FACT_FOLDERS else path.name)


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
