"""The one table of data kinds: what a fund's data is made of.

Every module that needs "which kinds are there, in what order, which are
facts, which column dates a row, where it is stored" reads this table
instead of keeping its own list: the fund-directory lister, the sources, the
reader, the pipeline's load order and the store's table specs.

The order of ``KINDS`` is the load order: goals and budget come first
because every fact file is validated against them (a payment's unit and
allocation must exist in the budget, an output's indicator in the goals).

A *snapshot* kind is one file in the fund directory (``<stem>.csv`` or
``<stem>.xlsx``) that replaces the fund's whole set when a new version loads.
A *fact* kind is any number of files in the folder ``<stem>/``; its rows are
upserted by key and dated by ``date_column`` (a file waits until the month of
its last dated row is closed).

Imports nothing of the package: it sits at the base, below the store, the
column specs, the reader, the sources and the fund.yaml schema that use it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DataKind:
    name: str  # the kind as rules/tables.csv, the validation rules and the store's source_file name it
    label_zh: str  # what the finance office calls it
    stem: str  # snapshot: the file name without suffix; fact: the folder
    snapshot: bool  # one file replacing the set (True) or a folder of dated facts (False)
    date_column: str | None  # the canonical column placing a fact row in a month
    store_table: str  # the store's table (store.py derives its key and value columns from it)


KINDS: tuple[DataKind, ...] = (
    DataKind("goals", "绩效目标表", "goals", True, None, "goal"),
    DataKind("budget", "预算指标表", "budget", True, None, "allocation"),
    DataKind("payments", "支出明细", "payments", False, "pay_date", "payment"),
    DataKind("inspections", "抽检记录", "inspections", False, "sample_date", "inspection"),
    DataKind("outputs", "产出数据", "outputs", False, "month", "output"),
)

_BY_NAME = {k.name: k for k in KINDS}

LOAD_ORDER: tuple[str, ...] = tuple(k.name for k in KINDS)
SNAPSHOT_KINDS: tuple[str, ...] = tuple(k.name for k in KINDS if k.snapshot)
FACT_KINDS: tuple[str, ...] = tuple(k.name for k in KINDS if not k.snapshot)
FACT_FOLDERS: tuple[str, ...] = tuple(k.stem for k in KINDS if not k.snapshot)
DATE_COLUMN: dict[str, str] = {k.name: k.date_column for k in KINDS if k.date_column}
# The file types the fund directory is read in (ingest reads .txt/.xlsm too when asked directly).
SUFFIXES: tuple[str, ...] = (".csv", ".xlsx")


def data_kind(name: str) -> DataKind:
    """The row of ``name``; ValueError naming the known kinds otherwise."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown table kind {name!r}; expected one of {LOAD_ORDER}") from None
