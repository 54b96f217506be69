"""The intake wing: everything that gets a fund's data in.

======================  ================================================
base.py                 the Source interface, Pulled, SourceError, Endpoint
registry.py             the table of source kinds (fund.yaml ``source.kind``)
files.py                the file drop (the default source) and the lister
sql.py                  a SQL database, one table per kind
treasury.py             the treasury payment system's HTTP/JSON export
snapshot.py             the CSV snapshot every pulling source writes
ingest.py               read a CSV/XLSX file into a typed DataFrame
======================  ================================================

The table of data kinds (stem, date column, fact or snapshot, load order,
store table) is ``budget_monitor.kinds``, at the base: the store and the
fund.yaml schema read it too. It is re-exported here.

Nothing here imports the pipeline: the pipeline calls the wing. This
``__init__`` stays light (no database or HTTP client is imported with it).
"""

from .base import Endpoint, Pulled, Resolver, Source, SourceError
from budget_monitor.kinds import DATE_COLUMN, FACT_KINDS, KINDS, LOAD_ORDER, SNAPSHOT_KINDS, DataKind, data_kind

__all__ = [
    "DATE_COLUMN",
    "FACT_KINDS",
    "KINDS",
    "LOAD_ORDER",
    "SNAPSHOT_KINDS",
    "DataKind",
    "Endpoint",
    "Pulled",
    "Resolver",
    "Source",
    "SourceError",
    "data_kind",
]
