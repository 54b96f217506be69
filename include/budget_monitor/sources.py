"""Facade: the sources live in the intake wing (:mod:`budget_monitor.intake`).

Kept so that ``from budget_monitor.sources import SqlSource, pull_month,
fund_files, unsafe_entries`` goes on working.
"""

from budget_monitor.intake.files import UnsafeEntry, fund_files, unsafe_entries
from budget_monitor.kinds import FACT_KINDS, SNAPSHOT_KINDS, SUFFIXES
from budget_monitor.intake.sql import SqlSource, pull_month

SNAPSHOT_FILES = SNAPSHOT_KINDS

__all__ = [
    "FACT_KINDS",
    "SNAPSHOT_FILES",
    "SUFFIXES",
    "SqlSource",
    "UnsafeEntry",
    "fund_files",
    "pull_month",
    "unsafe_entries",
]
