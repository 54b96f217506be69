"""The SQL source: a database with one table per fact kind, filtered by fund and month.

Columns are named as the data contract's aliases (voucher_no, unit, doc_no,
amount, pay_date, ...) plus ``fund_code``. The month's rows of each kind are
written to the month's CSV snapshot (snapshot.py) and loaded from there.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from budget_monitor.periods import month_bounds
from budget_monitor.tables import spec_of

from .base import Pulled, Resolver, SourceError
from budget_monitor.kinds import DATE_COLUMN, FACT_KINDS
from .snapshot import write_snapshot


@dataclass(frozen=True)
class SqlSource:
    """A source database with one table per kind, columns named as the contract's aliases
    (voucher_no, unit, doc_no, amount, pay_date, ...) plus ``fund_code``."""

    url: str = field(repr=False)  # may hold a password
    tables: dict[str, str] = field(default_factory=lambda: {k: k for k in FACT_KINDS})
    # Column that places a row in a month (dates, or 'YYYY-MM' text for outputs).
    date_columns: dict[str, str] = field(default_factory=lambda: dict(DATE_COLUMN))
    kind: str = "sql"

    @classmethod
    def from_settings(cls, settings: Any, resolve: Resolver | None = None) -> SqlSource:
        """From fund.yaml's ``source`` (config.SqlSourceSettings): the URL from the
        Airflow connection ``conn_id`` when there is one, else from the
        environment variable ``url_env``."""
        found = resolve(settings.conn_id) if resolve is not None else None
        url = (found.url if found is not None else None) or os.environ.get(settings.url_env)
        if not url:
            raise SourceError(
                f"数据库来源未配置：请设置 Airflow 连接 {settings.conn_id} 或环境变量 {settings.url_env}"
                "（数据库地址与密码不写入 fund.yaml）",
                fund_code="",
                source="sql",
            )
        return cls(
            url,
            tables={**{k: k for k in FACT_KINDS}, **settings.tables},
            date_columns={**DATE_COLUMN, **settings.date_columns},
        )

    def pull(self, fund_code: str, month: str, fund_dir: Path) -> Pulled:
        """Write the month's rows of each kind to its snapshot file in ``fund_dir``."""
        from sqlalchemy import MetaData, Table, create_engine, select

        from budget_monitor.store import normalise_url

        first, last = month_bounds(month)
        engine = create_engine(normalise_url(self.url))
        written: list[Path] = []
        counts: dict[str, int] = {}
        try:
            md = MetaData()
            with engine.connect() as conn:
                for kind in FACT_KINDS:
                    name = self.tables.get(kind)
                    if not name:
                        continue
                    table = Table(name, md, autoload_with=conn)
                    col = table.c[self.date_columns[kind]]
                    stmt = select(table).where(table.c.fund_code == fund_code)
                    if spec_of(kind, DATE_COLUMN[kind]).type == "month":  # 'YYYY-MM' text, not a date
                        stmt = stmt.where(col == month)
                    else:
                        stmt = stmt.where(col >= first, col <= last)
                    keys = [c.name for c in table.columns if c.name != "fund_code"]
                    # Every column in the ORDER BY: the same rows always give the same bytes.
                    stmt = stmt.order_by(*[table.c[k] for k in keys])
                    rows = conn.execute(stmt).mappings().all()
                    if not rows:
                        continue
                    written.append(write_snapshot(fund_dir, kind, fund_code, month, keys, rows))
                    counts[kind] = len(rows)
        finally:
            engine.dispose()
        return Pulled(self.kind, fund_code, month, tuple(written), counts)


def pull_month(source: SqlSource, fund_code: str, month: str, fund_dir: Path) -> list[Path]:
    """Write the month's rows of each kind to CSV files in ``fund_dir``; return them."""
    return list(source.pull(fund_code, month, Path(fund_dir)).files)
