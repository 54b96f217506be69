"""Files validated chunk by chunk (a large CSV read by ``ingest.CsvStream``):
the whole file's facts for the file-level rules (:class:`ChunkedFile`) and
one GX verdict over many chunks (:class:`ChunkVerdicts`)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from ..ingest import IngestedTable
from .batch import row_level
from .context import FileFacts, ValidationContext
from .engine import active_rules, parameters_for
from .prepare import check_frame, exact_ints, fen_values
from .report import ValidationReport, display_name
from .runtime import BASIC_FORMAT, gx_runtime, specs_for


class ChunkedFile:
    """The file-level rules of one file validated chunk by chunk (ingest.CsvStream).

    Row-level rules judge each row on its own, so a chunk's verdicts on them
    are the whole file's. Two rules look at the whole file: uniqueness
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
        active, _ = active_rules(kind, ctx)
        self.unique = tuple(
            dict.fromkeys(c for r in active if r.expectation == "ExpectColumnValuesToBeUnique" for c in r.columns)
        )
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
            self._before[c] += int(fen_values(table, c).sum())
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
            amounts = fen_values(table, c)
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
    sets whose every rule judges rows one by one (:func:`row_level`), so
    the concatenation's verdict is each chunk's; :attr:`usable` says so.
    Passing means no failure of any severity: a file with a warning, like a
    failing one, goes to the exact passes, which report it chunk by chunk.
    """

    GROUP_ROWS = 500_000

    def __init__(self, kind: str, ctx: ValidationContext) -> None:
        self.kind = kind
        self.active, self.skipped = active_rules(kind, ctx)
        self.specs = specs_for(self.active)
        # A uniqueness expectation over concatenated chunks is at least as strict
        # as within each chunk: a key repeated across them fails here too, and
        # the exact passes then settle it, as the key hashes would have.
        self.usable = bool(self.active) and all(row_level(s) for s in self.specs)
        self.params = parameters_for(ctx, self.active)
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
        return bool(gx_runtime().run(self.kind, self.specs, frame, self.params, BASIC_FORMAT).success)

    def report(self) -> ValidationReport:
        """The report of a file every chunk of which passed (validate_table's, merged)."""
        assert self._file is not None, "ChunkVerdicts.report before any chunk"
        name, path, sha = self._file
        return ValidationReport(name, path, self.kind, sha, self.n_rows, skipped=list(self.skipped))


def _hashes(values: list[Any]) -> np.ndarray:
    return np.fromiter(map(hash, values), dtype=np.int64, count=len(values))
