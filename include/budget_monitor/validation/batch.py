"""Validating many small files in few Great Expectations runs (:func:`validate_batch`)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from functools import cache
from typing import Any

import numpy as np
import pandas as pd

from ..ingest import IngestedTable
from .context import ValidationContext
from .engine import active_rules, clean_report, parameters_for, validate_table
from .prepare import check_frame
from .report import ValidationReport
from .rules import Rule
from .runtime import BASIC_FORMAT, GXRuntime, Spec, gx_runtime, specs_for


# Files up to this many rows are validated together with the other small files
# of a batch; a larger file is validated on its own (its GX run is worth it, and
# the batch's row-finding pass must stay small).
BATCH_MAX_ROWS = 50_000
# Which file of the concatenated check frame a row came from.
_FILE_COLUMN = "__file__"
# Joins a file's position and a value into one value of a keyed column.
_KEY_SEP = "\x1f"
# Finds the files behind a batch's failed row-level expectations.
_FILES_FORMAT = {
    "result_format": "COMPLETE",
    "unexpected_index_column_names": [_FILE_COLUMN],
    "return_unexpected_index_query": False,
}
_MISSING = {"ignore_row_if": "any_value_is_missing"}
_EITHER = {"ignore_row_if": "either_value_is_missing"}


def row_level(spec: Spec) -> bool:
    """Is ``spec`` a map expectation (each row judged; no ``mostly``)? Over a
    concatenation of files or chunks it then finds the rows it finds in each
    alone (a uniqueness expectation once keyed by file, see :func:`_batch_form`)."""
    return _map_expectation(spec.expectation) and "mostly" not in spec.kwargs


@cache
def _map_expectation(name: str) -> bool:
    from great_expectations.expectations.expectation import (
        ColumnMapExpectation,
        ColumnPairMapExpectation,
        MulticolumnMapExpectation,
    )

    cls = getattr(gx_runtime().gx.expectations, name)
    return issubclass(cls, (ColumnMapExpectation, ColumnPairMapExpectation, MulticolumnMapExpectation))


def validate_batch(items: Sequence[tuple[IngestedTable, ValidationContext]]) -> list[ValidationReport]:
    """Validate many files; the same reports as :func:`validate_table` per file.

    Great Expectations costs ~10 ms per run plus ~12 ms per expectation,
    whatever the row count (bench/RESULTS.md R3): a monthly close of small
    files (three per fund, tens of rows each) spends most of its time there.
    So the small files of one kind that share their rule set are validated
    together, whichever fund they belong to:

    1. each file's check frame is prepared with its own context and tagged
       with its position (``__file__``);
    2. one GX run of the row-level expectations over the concatenated frames
       (BASIC), each judging every file by that file's own values
       (:func:`_batch_form`); only if something failed, a second run of the
       failed ones (COMPLETE, indexed by file) names the files holding
       failing rows;
    3. the table-level expectations (sums, sets a column must contain) run per
       file, with that file's parameters;
    4. a file named in 2 or failing 3 is validated again on its own by
       :func:`validate_table`, which builds the report (rows, messages) exactly
       as for a single file. Every other file passed the full suite.
    """
    reports: list[ValidationReport | None] = [None] * len(items)
    rules = [active_rules(table.kind, ctx) for table, ctx in items]
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i, ((table, ctx), (active, _)) in enumerate(zip(items, rules, strict=True)):
        if not active or table.n_rows > BATCH_MAX_ROWS:
            continue
        key: tuple[Any, ...] = (table.kind, tuple(r.rule_id for r in active))
        _, shared, _ = _batch_form(specs_for(active))
        if shared:  # a row-level parameter the batch cannot key by file: only files sharing it
            params = parameters_for(ctx, active)
            key += (json.dumps([params.get(p) for p in shared], sort_keys=True, ensure_ascii=False, default=str),)
        groups.setdefault(key, []).append(i)
    for key, members in groups.items():
        if len(members) < 2:
            continue
        active = rules[members[0]][0]
        for i, passed in zip(members, _batch_verdicts(key[0], active, [items[i] for i in members]), strict=True):
            if passed:
                reports[i] = clean_report(*items[i], rules[i][1])
    return [r if r is not None else validate_table(*items[i]) for i, r in enumerate(reports)]


def _batch_verdicts(
    kind: str,
    active: tuple[Rule, ...],
    items: list[tuple[IngestedTable, ValidationContext]],
) -> list[bool]:
    """Per file: did it pass every expectation of ``active`` (steps 1-3 of :func:`validate_batch`)?"""
    rt = gx_runtime()
    frames = [check_frame(t, active, ctx) for t, ctx in items]
    file_params = [parameters_for(ctx, active) for _, ctx in items]
    passed = [True] * len(items)
    specs = specs_for(active)
    row_specs, shared, keyed = _batch_form(specs)
    if row_specs:
        batch = pd.concat([f.assign(**{_FILE_COLUMN: n}) for n, f in enumerate(frames)], ignore_index=True)
        params = {p: file_params[0][p] for p in shared}  # the same for the whole group
        params.update(_keyed_columns(batch, keyed, file_params))
        run = rt.run(kind, row_specs, batch, params, BASIC_FORMAT)
        failed = [res for res in run.results if not res.success]
        if failed:
            for n in _failing_files(rt, kind, row_specs, batch, failed, params, len(items)):
                passed[n] = False
    table_specs = tuple(s for s in specs if not row_level(s))
    if table_specs:
        for n, frame in enumerate(frames):
            if not passed[n]:
                continue  # validated again on its own anyway
            passed[n] = bool(rt.run(kind, table_specs, frame, file_params[n], BASIC_FORMAT).success)
    return passed


def _param(value: Any) -> str | None:
    """The ``$PARAMETER`` name ``value`` refers to, if it is one."""
    return value.get("$PARAMETER") if isinstance(value, dict) else None


def _batch_form(specs: tuple[Spec, ...]) -> tuple[tuple[Spec, ...], list[str], list[tuple[str, str, str]]]:
    """The row-level expectations of ``specs`` as one run over concatenated
    files judges them, each file by its own values; the parameters left
    shared by the files of a run; the keyed columns to add.

    - uniqueness: compound with ``__file__`` (a voucher in two files is two keys);
    - a value set from the file's context (its units ...): the column and the
      set keyed by file (``<n>\\x1f<value>``), GX's value-set expectation on them;
    - a bound from the file's context (its year, its budget): the bound as a
      column holding the file's value, GX's column-pair comparison (A ≥ B,
      nulls left out) of the value and it.

    Keyed columns are (what, column, parameter): "set" keys ``column`` and
    the set ``parameter`` by file, "bound" is ``parameter``'s value per row.
    """
    out: list[Spec] = []
    shared: list[str] = []
    keyed: list[tuple[str, str, str]] = []
    for spec in specs:
        if not row_level(spec):
            continue
        kw = spec.kwargs
        where = {k: kw[k] for k in ("row_condition",) if k in kw}
        if spec.expectation == "ExpectColumnValuesToBeUnique":
            columns = [_FILE_COLUMN, kw["column"]]
            out.append(spec.replace("ExpectCompoundColumnsToBeUnique", {"column_list": columns, **_MISSING, **where}))
        elif spec.expectation == "ExpectCompoundColumnsToBeUnique":
            out.append(spec.replace(spec.expectation, {**kw, "column_list": [_FILE_COLUMN, *kw["column_list"]]}))
        elif spec.expectation == "ExpectColumnValuesToBeInSet" and _param(kw["value_set"]):
            p = _param(kw["value_set"])
            keyed.append(("set", kw["column"], p))
            by_file = {"column": _keyed(kw["column"]), "value_set": {"$PARAMETER": _keyed(p)}}
            out.append(spec.replace(spec.expectation, {**kw, **by_file}))
        elif spec.expectation == "ExpectColumnValuesToBeBetween" and _params_of(kw):
            literal = {k: kw[k] for k in ("min_value", "max_value") if k in kw and not _param(kw[k])}
            if literal:
                rest = {k: v for k, v in kw.items() if k not in ("min_value", "max_value")}
                out.append(spec.replace(spec.expectation, {**rest, **literal}))
            for bound in ("min_value", "max_value"):
                p = _param(kw.get(bound))
                if p:
                    keyed.append(("bound", kw["column"], p))
                    a, b = (kw["column"], _keyed(p)) if bound == "min_value" else (_keyed(p), kw["column"])
                    pair = {"column_A": a, "column_B": b, "or_equal": True, **_EITHER, **where}
                    out.append(spec.replace("ExpectColumnPairValuesAToBeGreaterThanB", pair))
        else:
            shared += [p for p in _params_of(kw) if p not in shared]
            out.append(spec)
    return tuple(out), shared, list(dict.fromkeys(keyed))


def _params_of(kwargs: dict[str, Any]) -> list[str]:
    return [p for v in kwargs.values() if (p := _param(v))]


def _keyed(name: str) -> str:
    return f"{name}__by_file"


def _keyed_columns(batch: pd.DataFrame, keyed: list[tuple[str, str, str]], file_params: list[dict]) -> dict[str, Any]:
    """Add the keyed columns to ``batch``; return the keyed value sets (parameters)."""
    files = batch[_FILE_COLUMN].to_numpy()
    params: dict[str, Any] = {}
    for what, column, p in keyed:
        if what == "set":
            values = batch[column].astype(object)
            keys = pd.Series(files, index=batch.index).astype(str) + _KEY_SEP + values.astype(str)
            batch[_keyed(column)] = keys.where(values.notna(), None)
            params[_keyed(p)] = [f"{n}{_KEY_SEP}{v}" for n, fp in enumerate(file_params) for v in fp[p]]
        elif str(batch[column].dtype).startswith("datetime64"):
            batch[_keyed(p)] = pd.to_datetime(pd.Series([fp[p] for fp in file_params])).to_numpy("datetime64[ns]")[
                files
            ]
        else:
            batch[_keyed(p)] = np.asarray([fp[p] for fp in file_params], dtype="float64")[files]
    return params


def _failing_files(
    rt: GXRuntime,
    kind: str,
    specs: tuple[Spec, ...],
    batch: pd.DataFrame,
    failed: list[Any],
    params: dict[str, Any],
    n_files: int,
) -> set[int]:
    """The files (positions) holding rows that failed a row-level expectation."""
    if any((res.exception_info or {}).get("raised_exception") for res in failed):
        return set(range(n_files))  # no row verdicts to go by: every file on its own
    wanted = {res.expectation_config.meta["spec"] for res in failed}
    run = rt.run(kind, tuple(s for s in specs if s.id in wanted), batch, params, _FILES_FORMAT)
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
