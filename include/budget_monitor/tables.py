"""Column specs per table kind, read from ``rules/tables.csv`` (specs as data).

A spec row names the canonical (snake_case) DataFrame column, the Chinese
header the finance office writes, the English alias, extra accepted header
spellings (``also``, ``|``-separated), whether the column is required and its
type:

- ``str``: trimmed text; empty means missing (a required str column's empty
  cell is null in the typed frame so that a not-null expectation reports it)
- ``text``: optional free text, ``''`` when absent
- ``money``: integer fen (``Int64``), see money.py; a 万元 header scales ×10000
- ``date``: ``datetime64`` at midnight, see dates.py
- ``month``: ``'YYYY-MM'`` text
- ``decimal``: ``decimal.Decimal`` (goal weights)
- ``number_text``: kept as written in ``<col>``, plus ``<col>_num`` Decimal
  (null when the text is not a number, e.g. 达成)

Header matching ignores full-width/half-width differences (NFKC), blanks and
letter case, and reads a trailing unit in brackets: ``金额（万元）`` and
``支付金额(万元)`` match 金额/支付金额 with a ×10000 money scale, ``金额(元)``
with scale 1.
"""

from __future__ import annotations

import csv
import re
import unicodedata
from dataclasses import dataclass
from functools import cache
from importlib import resources

from .kinds import LOAD_ORDER, data_kind

KINDS: tuple[str, ...] = LOAD_ORDER
TYPES = frozenset({"str", "text", "money", "date", "month", "decimal", "number_text"})

# A trailing "(万元)" / "（元）" / "[万元]" / "单位：万元" after NFKC normalisation.
_UNIT_RE = re.compile(r"(?:[(\[]\s*(?:单位[:：]?)?\s*(万元|元)\s*[)\]]|[(\[]?单位[:：]?(万元|元)[)\]]?)$")
_SCALES = {"元": 1, "万元": 10_000}


@dataclass(frozen=True)
class ColumnSpec:
    kind: str
    column: str  # canonical DataFrame column
    header_zh: str  # the Chinese header of the data contract
    alias: str  # English alias accepted as a header
    also: tuple[str, ...]  # other accepted spellings
    required: bool
    type: str

    def names(self) -> tuple[str, ...]:
        """Every accepted header spelling, normalised."""
        return tuple(dict.fromkeys(normalize_header(n) for n in (self.header_zh, self.alias, self.column, *self.also)))


@dataclass(frozen=True)
class HeaderMatch:
    spec: ColumnSpec
    source: str  # the header exactly as written in the file
    scale: int  # money scale from a unit in the header (1 or 10000)


class HeaderError(ValueError):
    """Headers do not fit the table kind; the message is Chinese."""


def normalize_header(text: str) -> str:
    """NFKC (full-width → half-width), drop all blanks, lower-case."""
    norm = unicodedata.normalize("NFKC", str(text))
    return re.sub(r"\s+", "", norm).lower()


def split_unit(header: str) -> tuple[str, int | None]:
    """``金额（万元）`` → (``金额``, 10000); ``金额`` → (``金额``, None)."""
    norm = normalize_header(header)
    m = _UNIT_RE.search(norm)
    if not m:
        return norm, None
    unit = m.group(1) or m.group(2)
    return norm[: m.start()], _SCALES[unit]


@cache
def specs(kind: str) -> tuple[ColumnSpec, ...]:
    """The column specs of one table kind, in contract order."""
    data_kind(kind)  # unknown kind -> ValueError naming the known ones
    return tuple(s for s in _all_specs() if s.kind == kind)


@cache
def _all_specs() -> tuple[ColumnSpec, ...]:
    text = resources.files("budget_monitor").joinpath("rules/tables.csv").read_text(encoding="utf-8")
    out = []
    for rec in csv.DictReader(text.splitlines()):
        spec = ColumnSpec(
            kind=rec["kind"],
            column=rec["column"],
            header_zh=rec["header_zh"],
            alias=rec["alias"],
            also=tuple(a for a in rec["also"].split("|") if a),
            required=rec["required"].strip().lower() in ("yes", "true", "1"),
            type=rec["type"],
        )
        if spec.type not in TYPES:
            raise ValueError(f"tables.csv: bad type {spec.type!r} for {spec.kind}.{spec.column}")
        out.append(spec)
    return tuple(out)


def spec_of(kind: str, column: str) -> ColumnSpec:
    for s in specs(kind):
        if s.column == column:
            return s
    raise KeyError(f"{kind}.{column}")


def match_headers(kind: str, headers: list[str]) -> dict[str, HeaderMatch]:
    """Map canonical column → the file's header; raise HeaderError (Chinese).

    The primary Chinese header and the alias win over the looser ``also``
    spellings, so a file having both 支付金额 and 金额 maps 支付金额.
    Unknown headers are ignored (they stay in the raw frame).
    """
    kspecs = specs(kind)
    parsed = [(h, *split_unit(h)) for h in headers]
    found: dict[str, HeaderMatch] = {}
    for spec in kspecs:
        primary = {normalize_header(spec.header_zh), normalize_header(spec.alias), normalize_header(spec.column)}
        loose = set(spec.names()) - primary
        for names in (primary, loose):
            hits = [(h, scale) for h, base, scale in parsed if base in names]
            if len(hits) > 1:
                cols = "、".join(f"“{h}”" for h, _ in hits)
                raise HeaderError(f"列{cols}都对应“{spec.header_zh}”，无法确定使用哪一列")
            if hits:
                h, scale = hits[0]
                if scale not in (None, 1) and spec.type != "money":
                    raise HeaderError(f"列“{h}”不是金额列，不能带单位“万元”")
                found[spec.column] = HeaderMatch(spec=spec, source=h, scale=scale or 1)
                break
    used = [m.source for m in found.values()]
    dup = {h for h in used if used.count(h) > 1}
    if dup:
        raise HeaderError(f"列“{sorted(dup)[0]}”同时对应多个标准列")
    missing = [s for s in kspecs if s.required and s.column not in found]
    if missing:
        names = "、".join(f"“{s.header_zh}”" for s in missing)
        raise HeaderError(f"缺少必需的列{names}")
    return found
