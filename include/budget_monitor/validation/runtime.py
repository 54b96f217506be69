"""The Great Expectations runtime: one ephemeral GX context per process, with
a data source, a dataframe asset, a whole-frame batch definition and a suite
(ValidationDefinition) per (table kind, expectation set).

Built once per process and lazily: importing great_expectations costs
seconds, so a batch of funds pays the import once and importing this module
does not pay it at all.
"""

from __future__ import annotations

from typing import Any

from .prepare import check_column
from .report import MAX_ROWS_PER_RULE
from .rules import Rule


class GXRuntime:
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
                suite.add_expectation(cls(column=check_column(r, col), meta=meta, **r.kwargs))
            vd = self.gx.ValidationDefinition(name=suite_name, data=self.batch_definition, suite=suite)
            self.definitions[key] = self.context.validation_definitions.add(vd)
        return self.definitions[key]


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
