"""The Great Expectations runtime: one ephemeral GX context per process, with
a data source, a dataframe asset, a whole-frame batch definition and a suite
(ValidationDefinition) per (table kind, expectation set).

Built once per process and lazily: importing great_expectations costs
seconds, so a batch of funds pays the import once and importing this module
does not pay it at all.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

from .prepare import check_column, store_length
from .report import MAX_ROWS_PER_RULE
from .rules import STORE_LENGTH, Rule, _condition_columns

# Expectations that judge a value against the other rows (not the row alone).
UNIQUENESS = frozenset({"ExpectColumnValuesToBeUnique", "ExpectCompoundColumnsToBeUnique"})


@dataclass(frozen=True)
class Spec:
    """One expectation of a suite and the rule and column it reports for."""

    rule_id: str
    column: str  # the rule's column: where a failure is reported
    severity: str
    expectation: str
    kwargs_json: str  # the expectation's kwargs (JSON: a Spec is a cache key)
    # The id of the spec this one stands in for within one run (GXRuntime.run), so
    # that its result is found under the spec the caller asked for.
    origin: str = ""

    @property
    def id(self) -> str:
        """Names the expectation in its result's meta (a rule may have two in a batch run)."""
        return self.origin or hashlib.sha1(f"{self.expectation}{self.kwargs_json}".encode()).hexdigest()[:12]

    @property
    def kwargs(self) -> dict[str, Any]:
        return json.loads(self.kwargs_json)

    def replace(self, expectation: str, kwargs: dict[str, Any]) -> Spec:
        return Spec(self.rule_id, self.column, self.severity, expectation, _dump(kwargs))


def _dump(kwargs: dict[str, Any]) -> str:
    return json.dumps(kwargs, sort_keys=True, ensure_ascii=False)


def specs_for(rules: Iterable[Rule]) -> tuple[Spec, ...]:
    """The expectations of ``rules`` on the frame of :func:`prepare.check_frame`:
    one per rule and column, its kwargs as in the rules table with the frame
    column it reads and the store lengths filled in."""
    out = []
    for r in rules:
        for col in r.columns:
            kwargs = dict(r.kwargs)
            for k, v in r.kwargs.items():
                if v == STORE_LENGTH:
                    kwargs[k] = store_length(r.table, col)
            if any(v is None for v in kwargs.values()):
                continue  # no store length: nothing to check
            if "column_list" not in kwargs:
                kwargs["column"] = check_column(r, col)
            out.append(Spec(r.rule_id, col, r.severity, r.expectation, _dump(kwargs)))
    return tuple(out)


class GXRuntime:
    """One ephemeral GX context per process, with a suite per (kind, expectation set)."""

    def __init__(self) -> None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig
        from great_expectations.execution_engine import pandas_execution_engine

        # GX fingerprints every in-memory batch under HASH_THRESHOLD bytes by
        # hashing the whole frame (pandas.util.hash_pandas_object) into a batch
        # marker this package never reads; on text columns that hashing costs
        # more than the expectations themselves. 0 turns the fingerprint off.
        pandas_execution_engine.HASH_THRESHOLD = 0
        self.gx = gx
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        self.source = self.context.data_sources.add_pandas("budget_monitor")
        self.asset = self.source.add_dataframe_asset("tables")
        self.batch_definition = self.asset.add_batch_definition_whole_dataframe("whole_file")
        self.definitions: dict[tuple[str, tuple[Spec, ...]], Any] = {}

    def expectation(self, spec: Spec) -> Any:
        cls = getattr(self.gx.expectations, spec.expectation)
        meta = {"rule_id": spec.rule_id, "column": spec.column, "severity": spec.severity, "spec": spec.id}
        return cls(meta=meta, **spec.kwargs)

    def definition(self, kind: str, specs: tuple[Spec, ...]) -> Any:
        """The ValidationDefinition of ``specs`` (cached per process)."""
        key = (kind, specs)
        if key not in self.definitions:
            suite_name = f"{kind}-{len(self.definitions)}"
            suite = self.context.suites.add(self.gx.ExpectationSuite(name=suite_name))
            for spec in specs:
                suite.add_expectation(self.expectation(spec))
            vd = self.gx.ValidationDefinition(name=suite_name, data=self.batch_definition, suite=suite)
            self.definitions[key] = self.context.validation_definitions.add(vd)
        return self.definitions[key]

    def run(self, kind: str, specs: tuple[Spec, ...], frame: Any, params: dict[str, Any], result_format: dict) -> Any:
        """The results of ``specs`` over ``frame`` with the suite parameters ``params``:
        one GX run, or two when some specs have a ``row_condition`` (see
        :func:`_narrow`). Each result's meta names the spec asked for."""
        specs, params = _absent_values(specs, frame, params)
        out = None
        for part, group in _narrow(specs, frame, result_format):
            result = self.definition(kind, group).run(
                batch_parameters={"dataframe": part}, expectation_parameters=params, result_format=result_format
            )
            if out is None:
                out = result
            else:
                out.results.extend(result.results)
                out.success = bool(out.success and result.success)
        return out


def _absent_values(specs: tuple[Spec, ...], frame: Any, params: dict[str, Any]) -> tuple[tuple[Spec, ...], dict]:
    """``column in {"$PARAMETER": p}`` as ``column not in`` the column's own
    values that ``p`` lacks: the same rows fail, with the same values.

    GX turns an expectation into its configuration (a pydantic ``dict()``
    that walks every kwarg, element by element) again for each success
    kwarg of each metric it computes, so a run costs in proportion to the
    value sets, whatever the rows: a fund's thousands of 指标文号 (or a
    batch's sets keyed by file) would cost more than the check itself. The
    values of the column missing from the set are few (none in a good file);
    GX still judges every row against them."""
    import pandas as pd

    out, extra = [], {}
    for spec in specs:
        kw = spec.kwargs
        p = _param(kw.get("value_set"))
        column = kw.get("column")
        if spec.expectation != "ExpectColumnValuesToBeInSet" or p not in params or "mostly" in kw or column is None:
            out.append(spec)
            continue
        values = frame[column]
        found = values.cat.categories if isinstance(values.dtype, pd.CategoricalDtype) else pd.unique(values.dropna())
        found = pd.Index(found)
        name = f"{p}__absent_from__{column}"
        extra[name] = found[~found.isin(list(params[p]))].tolist()
        kwargs = {**kw, "value_set": {"$PARAMETER": name}}
        out.append(
            Spec(spec.rule_id, spec.column, spec.severity, "ExpectColumnValuesToNotBeInSet", _dump(kwargs), spec.id)
        )
    return tuple(out), {**params, **extra} if extra else params


def _param(value: Any) -> str | None:
    return value["$PARAMETER"] if isinstance(value, dict) and set(value) == {"$PARAMETER"} else None


def _narrow(specs: tuple[Spec, ...], frame: Any, result_format: dict) -> list[tuple[Any, tuple[Spec, ...]]]:
    """The runs of ``specs``: the expectations with a ``row_condition`` over
    only the columns they read, the others over ``frame``.

    GX filters the whole batch frame for every metric of an expectation with
    a row condition (a copy of every column, several times per expectation),
    while the expectation reads two or three columns of it."""
    conditioned = tuple(s for s in specs if "row_condition" in s.kwargs)
    if not conditioned or len(conditioned) == len(specs):
        return [(frame, specs)]
    keep = list(result_format.get("unexpected_index_column_names") or [])
    for spec in conditioned:
        kw = spec.kwargs
        keep += [kw[k] for k in ("column", "column_A", "column_B") if k in kw]
        keep += list(kw.get("column_list") or ()) + list(_condition_columns(kw["row_condition"]))
    keep = [c for c in dict.fromkeys(keep) if c in frame.columns]
    plain = tuple(s for s in specs if "row_condition" not in s.kwargs)
    return [(frame, plain), (frame[keep], conditioned)]


def condition_filter(row_condition: dict[str, Any]) -> str:
    """A row condition (GX Condition JSON) as the pandas expression GX filters with."""
    from great_expectations.expectations.row_conditions import deserialize_row_condition

    return _pandas_engine().condition_to_filter_clause(deserialize_row_condition(row_condition))


@cache
def _pandas_engine() -> Any:
    from great_expectations.execution_engine import PandasExecutionEngine

    return PandasExecutionEngine()


def spec_key(res: Any) -> tuple[str, str]:
    """(rule_id, column) of a GX result, from the expectation's meta."""
    meta = res.expectation_config.meta
    return meta["rule_id"], meta["column"]


_RUNTIME: GXRuntime | None = None


def gx_runtime() -> GXRuntime:
    global _RUNTIME
    if _RUNTIME is None:
        _RUNTIME = GXRuntime()
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
