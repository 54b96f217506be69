"""Validation of ingested tables: the facade of :mod:`budget_monitor.validation`.

The pipeline, ingest, quarantine, the streaming load, the CLI and the tests
import ``budget_monitor.validate``; the work is done in the subpackage
(rules table, context, prepare steps, GX runtime, messages, Data Docs). See
``budget_monitor/validation/__init__.py`` for how a file is checked.

Importing this module does not import Great Expectations (seconds): the GX
runtime is built on the first validation.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from .budget import adjusted_budget_fen
from .validation import batch as _batch
from .validation import chunks as _chunks
from .validation import docs as _docs
from .validation import engine as _engine
from .validation import messages as _messages
from .validation import prepare as _prepare
from .validation import report as _report
from .validation import rules as _rules
from .validation import runtime as _runtime
from .validation.batch import validate_batch, validate_many
from .validation.chunks import ChunkedFile, ChunkVerdicts, _hashes
from .validation.context import PAIR_SEP, FileFacts, ValidationContext, pair_key
from .validation.docs import _fund_items, build_data_docs
from .validation.engine import validate_table
from .validation.messages import collect as _collect
from .validation.prepare import check_frame, exact_ints, running_totals, store_length
from .validation.report import (
    MAX_ROWS_PER_RULE,
    Failure,
    ValidationReport,
    display_name,
    merge_reports,
    report_for_ingest_error,
)
from .validation.rules import SEVERITIES, Rule, load_rules, rule, rules_for
from .validation.runtime import BASIC_FORMAT, RESULT_FORMAT, gx_runtime

__all__ = [
    "BASIC_FORMAT",
    "BATCH_MAX_ROWS",
    "MAX_ROWS_PER_RULE",
    "PAIR_SEP",
    "RESULT_FORMAT",
    "SEVERITIES",
    "ChunkVerdicts",
    "ChunkedFile",
    "Failure",
    "FileFacts",
    "Rule",
    "ValidationContext",
    "ValidationReport",
    "_collect",
    "_hashes",
    "_fund_items",
    "adjusted_budget_fen",
    "build_data_docs",
    "check_frame",
    "display_name",
    "exact_ints",
    "gx_runtime",
    "load_rules",
    "merge_reports",
    "pair_key",
    "report_for_ingest_error",
    "rule",
    "rules_for",
    "running_totals",
    "store_length",
    "validate_batch",
    "validate_many",
    "validate_table",
]

BATCH_MAX_ROWS = _batch.BATCH_MAX_ROWS


class _Facade(types.ModuleType):
    """Setting a name on the facade sets it where it is used: callers and
    tests replace ``budget_monitor.validate.<name>`` (``validate_table``,
    ``BATCH_MAX_ROWS``, ``_hashes``...) and expect the package to obey, so
    every validation module holding the same object gets the new one too."""

    def __setattr__(self, name: str, value: Any) -> None:
        old = self.__dict__.get(name, _MISSING)
        if old is not _MISSING:
            for module in _MODULES:
                if module.__dict__.get(name, _MISSING) is old:
                    setattr(module, name, value)
        super().__setattr__(name, value)


_MISSING = object()
_MODULES = (_batch, _chunks, _docs, _engine, _messages, _prepare, _report, _rules, _runtime)
sys.modules[__name__].__class__ = _Facade
