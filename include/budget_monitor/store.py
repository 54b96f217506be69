"""The store: exact money (integer fen) in SQLite by default or PostgreSQL.

Schema is SQLAlchemy Core (bulk loads of a million payments go through Core
executemany or PostgreSQL COPY; the ORM's unit of work would cost several
times more). Alembic migrations in ``migrations/`` create it; ``open_store``
upgrades to head on first use.

Loads are atomic per file: each file goes into a staging table, changed
values are written to ``audit``, then the covered rows are deleted and
re-inserted from staging, all in one transaction. A file whose sha256 is
already in ``source_file`` is skipped, so re-sending it changes nothing.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Engine,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from budget_monitor.kinds import KINDS, SNAPSHOT_KINDS as SNAPSHOT_KIND_NAMES
from budget_monitor.periods import TZ


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def now_local() -> datetime:
    """Wall-clock time in Asia/Shanghai, stored naive (both engines agree)."""
    return datetime.now(TZ).replace(tzinfo=None, microsecond=0)


fund = Table(
    "fund",
    metadata,
    Column("code", String(64), primary_key=True),
    Column("name", Text, nullable=False),
    Column("year", Integer, nullable=False),
    Column("department", Text, nullable=False),
    Column("updated_at", DateTime, nullable=False),
)

source_file = Table(
    "source_file",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("fund_code", String(64), ForeignKey("fund.code"), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("name", Text, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("encoding", String(16)),
    Column("rows", Integer, nullable=False),
    Column("archive_path", Text),
    Column("loaded_at", DateTime, nullable=False),
    UniqueConstraint("fund_code", "sha256"),
)

rejection = Table(
    "rejection",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("fund_code", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("name", Text, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("reason", Text, nullable=False),
    Column("quarantine_path", Text),
    Column("rejected_at", DateTime, nullable=False),
)

goal = Table(
    "goal",
    metadata,
    Column("fund_code", String(64), ForeignKey("fund.code"), primary_key=True),
    Column("name", String(200), primary_key=True),
    Column("level1", Text, nullable=False),
    Column("level2", Text, nullable=False),
    Column("target", Text, nullable=False),
    Column("weight", Numeric(8, 2), nullable=False),
    Column("position", Integer, nullable=False),
    Column("source_file_id", Integer, ForeignKey("source_file.id")),
)

allocation = Table(
    "allocation",
    metadata,
    Column("fund_code", String(64), ForeignKey("fund.code"), primary_key=True),
    Column("doc_no", String(200), primary_key=True),
    Column("unit", String(200), primary_key=True),
    Column("kind", String(8), primary_key=True),
    Column("date", Date, nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("source_file_id", Integer, ForeignKey("source_file.id")),
)

payment = Table(
    "payment",
    metadata,
    Column("fund_code", String(64), ForeignKey("fund.code"), primary_key=True),
    Column("voucher_no", String(100), primary_key=True),
    Column("unit", String(200), nullable=False),
    Column("doc_no", String(200), nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("pay_date", Date, nullable=False),
    Column("kind", String(8), nullable=False),
    Column("econ_class", Text),
    Column("memo", Text),
    Column("source_file_id", Integer, ForeignKey("source_file.id")),
    Index(None, "fund_code", "pay_date"),
)

inspection = Table(
    "inspection",
    metadata,
    Column("fund_code", String(64), ForeignKey("fund.code"), primary_key=True),
    Column("sample_no", String(100), primary_key=True),
    Column("sample_date", Date, nullable=False),
    Column("category", String(50), nullable=False),
    Column("unit", String(200), nullable=False),
    Column("result", String(10), nullable=False),
    Column("source_file_id", Integer, ForeignKey("source_file.id")),
)

output = Table(
    "output",
    metadata,
    Column("fund_code", String(64), ForeignKey("fund.code"), primary_key=True),
    Column("month", String(7), primary_key=True),
    Column("unit", String(200), primary_key=True),
    Column("name", String(200), primary_key=True),
    Column("value", Text, nullable=False),
    Column("value_num", Numeric(20, 4)),
    Column("note", Text),
    Column("source_file_id", Integer, ForeignKey("source_file.id")),
)

audit = Table(
    "audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("fund_code", String(64), nullable=False),
    Column("table_name", String(32), nullable=False),
    Column("row_key", Text, nullable=False),
    Column("column_name", String(64), nullable=False),
    Column("old_value", Text),
    Column("new_value", Text),
    Column("source_file_id", Integer),
    Column("changed_at", DateTime, nullable=False),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("fund_code", String(64), nullable=False),
    Column("unit", String(200), nullable=False),
    Column("period", String(16), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("subject", Text, nullable=False),
    Column("recipients", Text, nullable=False),
    Column("message", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Column("created_at", DateTime, nullable=False),
    Column("sent_at", DateTime),
    # An alert held for the monthly digest (status 'held', then 'digested'):
    # its figures as the digest shows them (JSON), and the month close whose
    # digest carried it. NULL for a mail of its own.
    Column("detail", Text),
    Column("digest", String(16)),
    UniqueConstraint("fund_code", "unit", "period", "kind"),
)


# A month whose close ran (step 2 of the monthly close): the year-end report
# is refused until December's close has run (drafts aside).
month_close = Table(
    "month_close",
    metadata,
    Column("fund_code", String(64), primary_key=True),
    Column("month", String(7), primary_key=True),
    Column("closed_at", DateTime, nullable=False),
)


# 核实反馈: a lagging (unit, quarter) asked for its cause and measures; the
# answer (or its absence after the reminder) is what the year-end quotes.
feedback = Table(
    "feedback",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("fund_code", String(64), nullable=False),
    Column("unit", String(200), nullable=False),
    Column("year", Integer, nullable=False),
    Column("quarter", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("requested_at", DateTime, nullable=False),
    Column("deadline", DateTime, nullable=False),
    Column("reminded_at", DateTime),
    Column("answered_at", DateTime),
    Column("answered_by", String(200)),
    Column("cause", Text),
    Column("measures", Text),
    Column("channel", String(16)),
    UniqueConstraint("fund_code", "unit", "year", "quarter"),
)

# The finance office's decision on a year-end draft; the latest row decides.
approval = Table(
    "approval",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("fund_code", String(64), nullable=False),
    Column("year", Integer, nullable=False),
    Column("decision", String(16), nullable=False),
    Column("decided_by", String(200), nullable=False),
    Column("decided_at", DateTime, nullable=False),
    Column("comment", Text),
    Column("draft_sha256", String(64)),
)

# Columns of a fact table that are bookkeeping, not the row's key or values.
_BOOKKEEPING = ("fund_code", "source_file_id")


@dataclass(frozen=True)
class TableSpec:
    """How a fact table is keyed and which columns an audit row watches."""

    table: Table
    key: tuple[str, ...]
    values: tuple[str, ...]

    @classmethod
    def of(cls, table: Table) -> TableSpec:
        """Read off the schema: the key is the primary key after ``fund_code``,
        the values every other column but the bookkeeping, in table order."""
        key = tuple(c.name for c in table.primary_key.columns if c.name not in _BOOKKEEPING)
        values = tuple(c.name for c in table.columns if c.name not in key and c.name not in _BOOKKEEPING)
        return cls(table, key, values)


# One spec per row of the kinds table (kinds.py), which names the table.
FACTS: dict[str, TableSpec] = {k.name: TableSpec.of(metadata.tables[k.store_table]) for k in KINDS}
# Snapshot tables: a new budget/goals file replaces the fund's whole set.
SNAPSHOT_KINDS = frozenset(SNAPSHOT_KIND_NAMES)


# --------------------------------------------------------------------------
# Engine and migrations


def default_home() -> Path:
    """Where the embedded store and the raw-file archive live.

    A fixed place (not the current directory): running the CLI from another
    folder must find the same store, or every file would load again and every
    alert be sent again.
    """
    env = os.environ.get("BUDGET_MONITOR_HOME")
    if env:
        return Path(env).resolve()
    data = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return (Path(data) / "budget-monitor").resolve()


def default_db_url() -> str:
    return os.environ.get("BUDGET_MONITOR_DB_URL") or f"sqlite:///{default_home() / 'budget_monitor.db'}"


_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def normalise_url(url: str) -> str:
    """Accept plain postgresql:// URLs and use psycopg 3 (the pinned driver)."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def open_store(db_url: str | None = None, *, migrate: bool = True) -> Engine:
    """Engine for ``db_url`` (default: the embedded SQLite file), migrated to head.

    Engines are cached per URL so a batch of funds in one process shares one
    pool and pays the migration check once.
    """
    url = normalise_url(db_url or default_db_url())
    with _engines_lock:
        engine = _engines.get(url)
        if engine is not None:
            return engine
        if url.startswith("sqlite:///"):
            _private_sqlite_file(url)
        engine = create_engine(url, future=True, pool_pre_ping=True)
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
        if migrate:
            upgrade(engine)
        _engines[url] = engine
        return engine


def _private_sqlite_file(url: str) -> None:
    """Create the SQLite file's directory (0700) and the empty file (0600)
    before SQLite opens it: SQLite gives its -wal and -shm files the mode of
    the database file, so the whole store is owner-only (paths.py; shared
    with the group under BUDGET_MONITOR_SHARED_GROUP=1). An existing store
    keeps its mode."""
    from sqlalchemy.engine import make_url

    from budget_monitor.paths import private_dir, touch_private

    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    private_dir(path.parent)
    touch_private(path)


def dispose_all() -> None:
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Run the Alembic migrations on ``engine``'s database."""
    from alembic import command
    from alembic.config import Config

    here = Path(__file__).parent
    cfg = Config()
    cfg.set_main_option("script_location", str(here / "migrations"))
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Mapped tasks open the store at the same moment: one migrates, the
            # others wait here and then find the schema at head.
            conn.execute(text("SELECT pg_advisory_xact_lock(7723001)"))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


# --------------------------------------------------------------------------
# Writes


def upsert_fund(engine: Engine, code: str, name: str, year: int, department: str) -> None:
    with engine.begin() as conn:
        row = {"code": code, "name": name, "year": year, "department": department, "updated_at": now_local()}
        found = conn.execute(select(fund.c.code).where(fund.c.code == code)).first()
        if found:
            conn.execute(update(fund).where(fund.c.code == code).values(**row))
        else:
            conn.execute(insert(fund).values(**row))


def is_current(engine: Engine, fund_code: str, kind: str, sha256: str) -> bool:
    """Nothing to do for this file: a fact file already loaded, or the snapshot
    (budget/goals) file that is in force now. Putting back an earlier budget
    version is a change, so it is not "current" although its sha is known."""
    if kind not in SNAPSHOT_KINDS:
        return is_loaded(engine, fund_code, sha256)
    with engine.connect() as conn:
        latest = conn.execute(
            select(source_file.c.sha256)
            .where(source_file.c.fund_code == fund_code, source_file.c.kind == kind)
            .order_by(source_file.c.loaded_at.desc(), source_file.c.id.desc())
            .limit(1)
        ).scalar()
    return latest == sha256


def is_loaded(engine: Engine, fund_code: str, sha256: str) -> bool:
    with engine.connect() as conn:
        return (
            conn.execute(
                select(source_file.c.id).where(source_file.c.fund_code == fund_code, source_file.c.sha256 == sha256)
            ).first()
            is not None
        )


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class LoadStats:
    source_file_id: int
    kind: str
    inserted: int
    replaced: int
    audited: int
    skipped: bool = False


def archive_file(path: Path, fund_code: str, sha256: str, archive_root: Path | None = None) -> Path:
    """Copy the raw file, byte for byte, to ``<home>/archive/<fund>/<sha256[:2]>/<sha256>__<name>``.

    The name part is escaped (control/bidi characters) and cut by bytes,
    keeping its extension, so the archive name fits NAME_MAX (a 190-byte
    Chinese name did not); the sha256 alone identifies the copy. A fund code
    or a link that would leave the archive root is refused (UnsafePath).
    Directories are created 0700 and the copy is 0600 (see paths.py); the
    copy is atomic (atomic.copy_file: a failed or killed copy never leaves a
    partial file under the final name, and its temp is swept later).
    """
    from budget_monitor import atomic
    from budget_monitor.names import NAME_MAX, fit_name, safe_name
    from budget_monitor.paths import contained, file_mode, private_dir

    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise ValueError(f"archive_file: not a sha256 hex digest: {sha256!r}")
    root = archive_root or default_home() / "archive"
    folder = contained(root, fund_code, sha256[:2])
    prefix = f"{sha256}__"
    dest = folder / (prefix + fit_name(safe_name(path.name), NAME_MAX - len(prefix)))
    if not dest.exists():
        private_dir(folder)
        atomic.remove_stale_temps(folder)
        atomic.copy_file(path, dest, mode=file_mode())
    return dest


def load_rows(
    engine: Engine,
    *,
    fund_code: str,
    kind: str,
    name: str,
    sha256: str,
    rows: Sequence[dict[str, Any]],
    encoding: str | None = None,
    archive_path: str | None = None,
) -> LoadStats:
    """Load one validated file's rows atomically and idempotently.

    ``rows`` carry the canonical columns of ``FACTS[kind]`` (without
    fund_code/source_file_id). Re-loading a file with a known sha256 is a
    no-op; rows whose key already exists are replaced and every changed value
    is written to ``audit``.
    """
    spec = FACTS[kind]
    with engine.begin() as conn:
        known = conn.execute(
            select(source_file.c.id).where(source_file.c.fund_code == fund_code, source_file.c.sha256 == sha256)
        ).scalar()
        if known is not None and kind not in SNAPSHOT_KINDS:
            return LoadStats(known, kind, 0, 0, 0, skipped=True)
        if known is not None:
            # An earlier budget/goals version put back in force: same file row, new time.
            file_id = known
            conn.execute(
                update(source_file).where(source_file.c.id == known).values(loaded_at=now_local(), rows=len(rows))
            )
        else:
            file_id = conn.execute(
                insert(source_file)
                .values(
                    fund_code=fund_code,
                    kind=kind,
                    name=name,
                    sha256=sha256,
                    encoding=encoding,
                    rows=len(rows),
                    archive_path=archive_path,
                    loaded_at=now_local(),
                )
                .returning(source_file.c.id)
            ).scalar_one()
        if kind in SNAPSHOT_KINDS:
            records = [{**r, "fund_code": fund_code, "source_file_id": file_id} for r in rows]
            replaced, audited = _replace_snapshot(conn, spec, fund_code, records, file_id)
        else:
            replaced, audited = _upsert_facts(conn, spec, fund_code, rows, file_id)
        return LoadStats(file_id, kind, len(rows) - replaced, replaced, audited)


class ChunkedLoad:
    """One file's rows loaded chunk by chunk inside ONE transaction (a large
    file read in chunks): what :func:`load_rows` does for a fact file, with the
    rows handed over in parts, so no list of the whole file's rows exists.

    ``with ChunkedLoad(...) as load: load.add(rows) ...; load.commit(archive_path)``.
    Nothing is visible to others before :meth:`commit`; leaving the block
    without it (a chunk failed validation, an error) rolls everything back.

    The source_file row is written first (the rows reference it) and given its
    row count and archive path at commit. Whether the fund had rows of the
    table is looked up once, before the first chunk: a file that passed
    validation has unique keys, so a chunk can only replace rows stored
    before the file, never rows of an earlier chunk. On SQLite the write lock
    is held from the first chunk to the commit (other writers wait up to the
    busy timeout); the pipeline does no other write meanwhile.
    """

    def __init__(
        self, engine: Engine, *, fund_code: str, kind: str, name: str, sha256: str, encoding: str | None = None
    ) -> None:
        if kind in SNAPSHOT_KINDS:
            raise ValueError(f"ChunkedLoad: {kind} files are loaded whole (load_rows)")
        self.engine, self.fund_code, self.kind, self.spec = engine, fund_code, kind, FACTS[kind]
        self.name, self.sha256, self.encoding = name, sha256, encoding
        self.rows = self.replaced = self.audited = 0
        self.skipped = False
        self.file_id = 0
        self._conn: Connection | None = None
        self._tx: Any = None
        self._had_rows = False
        self.error: BaseException | None = None  # what the database refused, for the caller

    def __enter__(self) -> ChunkedLoad:
        self._conn = self.engine.connect()
        self._tx = self._conn.begin()
        known = self._conn.execute(
            select(source_file.c.id).where(
                source_file.c.fund_code == self.fund_code, source_file.c.sha256 == self.sha256
            )
        ).scalar()
        if known is not None:
            self.file_id, self.skipped = known, True  # loaded meanwhile: nothing to do, as load_rows
        return self

    @property
    def refusals(self) -> tuple[type[BaseException], ...]:
        """The errors by which the database refuses a value (NOT NULL, a length,
        a range). A streamed file's rows may reach the open transaction before
        their chunk's verdict; on PostgreSQL COPY raises the driver's own
        classes, not SQLAlchemy's."""
        from sqlalchemy.exc import DataError, IntegrityError

        dbapi = self.engine.dialect.dbapi
        own = tuple(getattr(dbapi, n) for n in ("DataError", "IntegrityError") if hasattr(dbapi, n))
        return (DataError, IntegrityError, *own)

    def _start(self) -> Connection:
        """The transaction, with the source_file row written (at the first rows:
        on SQLite the write lock is taken then, not while chunk 1 is validated)."""
        if self._tx is None or self._conn is None:
            raise RuntimeError("ChunkedLoad: used outside its with block or after rollback()")
        conn = self._conn
        if not self.file_id:
            self.file_id = conn.execute(
                insert(source_file)
                .values(
                    fund_code=self.fund_code,
                    kind=self.kind,
                    name=self.name,
                    sha256=self.sha256,
                    encoding=self.encoding,
                    rows=0,
                    archive_path=None,
                    loaded_at=now_local(),
                )
                .returning(source_file.c.id)
            ).scalar_one()
            self._had_rows = _has_rows(conn, self.spec.table, self.fund_code)
        return conn

    def add(self, rows: Sequence[dict[str, Any]]) -> None:
        """Load the next rows of the file (canonical columns, as for load_rows)."""
        if self.skipped or not rows:
            return
        conn = self._start()
        self.rows += len(rows)
        if self._had_rows:
            replaced, audited = _upsert_facts(conn, self.spec, self.fund_code, rows, self.file_id)
            self.replaced += replaced
            self.audited += audited
            return
        extra = {"fund_code": self.fund_code, "source_file_id": self.file_id}
        for i in range(0, len(rows), _CHUNK):
            bulk_insert(conn, self.spec.table, [{**r, **extra} for r in rows[i : i + _CHUNK]])

    def commit(self, archive_path: str | None = None) -> LoadStats:
        if not self.skipped:
            conn = self._start()  # a file of no rows still gets its source_file row
            conn.execute(
                update(source_file)
                .where(source_file.c.id == self.file_id)
                .values(rows=self.rows, archive_path=archive_path, loaded_at=now_local())
            )
        self._tx.commit()
        self._tx = None
        return LoadStats(
            self.file_id, self.kind, self.rows - self.replaced, self.replaced, self.audited, skipped=self.skipped
        )

    def rollback(self) -> None:
        """Undo everything added; the load cannot be used afterwards."""
        if self._tx is not None:
            self._tx.rollback()
            self._tx = None

    def __exit__(self, *exc: object) -> None:
        try:
            self.rollback()
        finally:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def stored_payment_amounts(engine: Engine, fund_code: str, vouchers: Sequence[str]) -> dict[str, int]:
    """Stored amount (fen) of each of ``vouchers`` the fund has (the others are left out)."""
    found: dict[str, int] = {}
    with engine.connect() as conn:
        if not vouchers or not _has_rows(conn, payment, fund_code):
            return found
        for cond in _key_in(conn, payment.c.voucher_no, list(dict.fromkeys(vouchers))):
            for voucher, fen in conn.execute(
                select(payment.c.voucher_no, payment.c.amount_fen).where(payment.c.fund_code == fund_code, cond)
            ):
                found[str(voucher)] = int(fen)
    return found


def _key_text(rec: dict[str, Any], key: Iterable[str]) -> str:
    return "|".join(str(rec[k]) for k in key)


def _same(a: Any, b: Any) -> bool:
    # Numeric columns come back as Decimal; compare by value, not by repr.
    if a is None or b is None:
        return a is None and b is None
    try:
        from decimal import Decimal

        if isinstance(a, Decimal) or isinstance(b, Decimal):
            return Decimal(str(a)) == Decimal(str(b))
    except ArithmeticError:
        pass
    return a == b


def _audit_rows(
    spec: TableSpec,
    fund_code: str,
    old: dict[str, Any] | None,
    new: dict[str, Any] | None,
    file_id: int,
) -> list[dict[str, Any]]:
    out = []
    ref = new if new is not None else old
    assert ref is not None
    for col in spec.values:
        before = None if old is None else old.get(col)
        after = None if new is None else new.get(col)
        if old is not None and new is not None and _same(before, after):
            continue
        out.append(
            {
                "fund_code": fund_code,
                "table_name": spec.table.name,
                "row_key": _key_text(ref, spec.key),
                "column_name": col,
                "old_value": None if before is None else str(before),
                "new_value": None if after is None else str(after),
                "source_file_id": file_id,
                "changed_at": now_local(),
            }
        )
    return out


def _has_rows(conn: Connection, table: Table, fund_code: str) -> bool:
    return conn.execute(select(table.c.fund_code).where(table.c.fund_code == fund_code).limit(1)).first() is not None


def _key_in(conn: Connection, col: Any, values: list) -> Iterable[Any]:
    """``col IN values`` conditions: one array parameter on PostgreSQL (one round
    trip for a million keys instead of 200 IN lists: bench/RESULTS.md R1),
    bounded IN lists elsewhere (SQLite's parameter limit)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy import String, any_, literal
        from sqlalchemy.dialects.postgresql import ARRAY

        yield col == any_(literal(values, ARRAY(String)))
        return
    for i in range(0, len(values), 5000):
        yield col.in_(values[i : i + 5000])


def _existing(conn: Connection, spec: TableSpec, fund_code: str, keys: list[tuple]) -> dict[tuple, dict]:
    """Existing rows for ``keys`` (none to look for when the fund has no rows yet)."""
    table = spec.table
    found: dict[tuple, dict] = {}
    if not _has_rows(conn, table, fund_code):
        return found
    if len(spec.key) == 1:
        col = table.c[spec.key[0]]
        for cond in _key_in(conn, col, [k[0] for k in keys]):
            for row in conn.execute(select(table).where(table.c.fund_code == fund_code, cond)).mappings():
                found[(row[spec.key[0]],)] = dict(row)
    else:
        wanted = set(keys)
        for row in conn.execute(select(table).where(table.c.fund_code == fund_code)).mappings():
            k = tuple(row[c] for c in spec.key)
            if k in wanted:
                found[k] = dict(row)
    return found


_CHUNK = 50_000  # rows per insert batch: bounds the extra dicts alive at once


def _upsert_facts(
    conn: Connection, spec: TableSpec, fund_code: str, records: Sequence[dict], file_id: int
) -> tuple[int, int]:
    table = spec.table
    if not records:
        return 0, 0
    keys = [tuple(r[k] for k in spec.key) for r in records]
    old = _existing(conn, spec, fund_code, keys)
    audits: list[dict] = []
    if old:
        for rec, k in zip(records, keys):
            if k in old:
                audits += _audit_rows(spec, fund_code, old[k], rec, file_id)
        cond = [table.c.fund_code == fund_code]
        if len(spec.key) == 1:
            for key_cond in _key_in(conn, table.c[spec.key[0]], [k[0] for k in old]):
                conn.execute(delete(table).where(*cond, key_cond))
        else:
            for k in old:
                conn.execute(delete(table).where(*cond, *[table.c[c] == v for c, v in zip(spec.key, k)]))
    extra = {"fund_code": fund_code, "source_file_id": file_id}
    for i in range(0, len(records), _CHUNK):
        bulk_insert(conn, table, [{**r, **extra} for r in records[i : i + _CHUNK]])
    if audits:
        conn.execute(insert(audit), audits)
    return len(old), len(audits)


def _replace_snapshot(
    conn: Connection, spec: TableSpec, fund_code: str, records: list[dict], file_id: int
) -> tuple[int, int]:
    table = spec.table
    old = {
        tuple(r[c] for c in spec.key): dict(r)
        for r in conn.execute(select(table).where(table.c.fund_code == fund_code)).mappings()
    }
    new = {tuple(r[c] for c in spec.key): r for r in records}
    audits: list[dict] = []
    for k in old.keys() | new.keys():
        if old:  # the first load of a fund is not a change worth auditing
            audits += _audit_rows(spec, fund_code, old.get(k), new.get(k), file_id)
    conn.execute(delete(table).where(table.c.fund_code == fund_code))
    bulk_insert(conn, table, records)
    if audits:
        conn.execute(insert(audit), audits)
    return len(old.keys() & new.keys()), len(audits)


def bulk_insert(conn: Connection, table: Table, records: Sequence[dict[str, Any]]) -> None:
    """Insert many rows: COPY on PostgreSQL (psycopg 3), Core executemany elsewhere.

    COPY is several times faster than INSERT for large files on PostgreSQL
    (shared/notes/performance-anchors.md); on SQLite executemany is the
    fastest path (``to_sql(method="multi")`` is 13x slower there).
    """
    if not records:
        return
    cols = [c.name for c in table.columns if c.name in records[0]]
    if conn.dialect.name == "postgresql" and len(records) > 200:
        raw = conn.connection.driver_connection
        with raw.cursor() as cur:
            stmt = f"COPY {table.name} ({', '.join(cols)}) FROM STDIN"
            with cur.copy(stmt) as copy:
                for rec in records:
                    copy.write_row([rec.get(c) for c in cols])
        return
    conn.execute(insert(table), list(records))


def record_rejection(
    engine: Engine,
    *,
    fund_code: str,
    kind: str,
    name: str,
    sha256: str,
    reason: str,
    quarantine_path: str | None,
) -> None:
    with engine.begin() as conn:
        conn.execute(
            insert(rejection).values(
                fund_code=fund_code,
                kind=kind,
                name=name,
                sha256=sha256,
                reason=reason,
                quarantine_path=quarantine_path,
                rejected_at=now_local(),
            )
        )


def record_close(engine: Engine, fund_code: str, month: str) -> None:
    """Mark ``month`` (YYYY-MM) of the fund closed; a rerun updates the time."""
    with engine.begin() as conn:
        done = conn.execute(
            update(month_close)
            .where(month_close.c.fund_code == fund_code, month_close.c.month == month)
            .values(closed_at=now_local())
        ).rowcount
        if not done:
            try:
                with conn.begin_nested():
                    conn.execute(insert(month_close).values(fund_code=fund_code, month=month, closed_at=now_local()))
            except IntegrityError:
                pass  # a concurrent close recorded it first


def closed_months(engine: Engine, fund_code: str) -> list[str]:
    """The fund's closed months, in order."""
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(month_close.c.month).where(month_close.c.fund_code == fund_code).order_by(month_close.c.month)
            ).scalars()
        )


def latest_rejection(engine: Engine, fund_code: str, kind: str) -> dict[str, Any] | None:
    """The fund's most recent rejected file of ``kind``, or None."""
    with engine.connect() as conn:
        row = (
            conn.execute(
                select(rejection)
                .where(rejection.c.fund_code == fund_code, rejection.c.kind == kind)
                .order_by(rejection.c.id.desc())
                .limit(1)
            )
            .mappings()
            .first()
        )
    return dict(row) if row else None


# --------------------------------------------------------------------------
# Reads


def _frame(conn: Connection, stmt: Any) -> "Any":
    import pandas as pd

    result = conn.execute(stmt)
    return pd.DataFrame(result.fetchall(), columns=list(result.keys()))


def earlier_funds(engine: Engine, department: str, before_year: int, years_back: int) -> list[dict[str, Any]]:
    """The department's funds of the ``years_back`` years before ``before_year``
    (code, name, year), oldest first: the earlier years the forecast learns from."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(fund.c.code, fund.c.name, fund.c.year)
            .where(
                fund.c.department == department,
                fund.c.year < before_year,
                fund.c.year >= before_year - years_back,
            )
            .order_by(fund.c.year, fund.c.code)
        ).mappings()
        return [dict(r) for r in rows]


def read_allocations(engine: Engine, fund_code: str) -> "Any":
    with engine.connect() as conn:
        return _frame(
            conn,
            select(
                allocation.c.unit, allocation.c.doc_no, allocation.c.kind, allocation.c.date, allocation.c.amount_fen
            )
            .where(allocation.c.fund_code == fund_code)
            .order_by(allocation.c.date, allocation.c.doc_no, allocation.c.unit),
        )


def read_goals(engine: Engine, fund_code: str) -> "Any":
    with engine.connect() as conn:
        return _frame(
            conn,
            select(goal.c.level1, goal.c.level2, goal.c.name, goal.c.target, goal.c.weight)
            .where(goal.c.fund_code == fund_code)
            .order_by(goal.c.position),
        )


def read_payments_by_day(engine: Engine, fund_code: str, through: date) -> "Any":
    """Net payments per unit and day up to ``through`` (SQL GROUP BY, not row by row)."""
    with engine.connect() as conn:
        return _frame(
            conn,
            select(payment.c.unit, payment.c.pay_date, func.sum(payment.c.amount_fen).label("amount_fen"))
            .where(payment.c.fund_code == fund_code, payment.c.pay_date <= through)
            .group_by(payment.c.unit, payment.c.pay_date)
            .order_by(payment.c.pay_date, payment.c.unit),
        )


def net_paid_fen(engine: Engine, fund_code: str, excluding: Sequence[str] = ()) -> int:
    """Net stored payments of the fund, leaving out ``excluding`` voucher numbers
    (those a corrected file is about to replace, so they do not count twice)."""
    total_of = select(func.coalesce(func.sum(payment.c.amount_fen), 0)).where(payment.c.fund_code == fund_code)
    with engine.connect() as conn:
        if not _has_rows(conn, payment, fund_code):
            return 0
        total = int(conn.execute(total_of).scalar_one())
        if excluding:
            for cond in _key_in(conn, payment.c.voucher_no, list(excluding)):
                total -= int(conn.execute(total_of.where(cond)).scalar_one())
    return total


def net_paid_by(engine: Engine, fund_code: str, column: str) -> dict[str, int]:
    """Net stored payments per unit or per doc_no (what a new budget must still cover)."""
    col = payment.c[column]
    with engine.connect() as conn:
        rows = conn.execute(
            select(col, func.sum(payment.c.amount_fen)).where(payment.c.fund_code == fund_code).group_by(col)
        ).all()
    return {str(k): int(v) for k, v in rows}


def net_paid_by_pair(engine: Engine, fund_code: str) -> dict[tuple[str, str], int]:
    """Net stored payments per allocation (doc_no, unit)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(payment.c.doc_no, payment.c.unit, func.sum(payment.c.amount_fen))
            .where(payment.c.fund_code == fund_code)
            .group_by(payment.c.doc_no, payment.c.unit)
        ).all()
    return {(str(d), str(u)): int(v) for d, u, v in rows}


def read_inspections(engine: Engine, fund_code: str, through: date | None = None) -> "Any":
    cond = [inspection.c.fund_code == fund_code]
    if through is not None:
        cond.append(inspection.c.sample_date <= through)
    with engine.connect() as conn:
        return _frame(
            conn,
            select(
                inspection.c.sample_no,
                inspection.c.sample_date,
                inspection.c.category,
                inspection.c.unit,
                inspection.c.result,
            )
            .where(and_(*cond))
            .order_by(inspection.c.sample_no),
        )


def read_outputs(engine: Engine, fund_code: str) -> "Any":
    with engine.connect() as conn:
        return _frame(
            conn,
            select(output.c.month, output.c.unit, output.c.name, output.c.value, output.c.value_num, output.c.note)
            .where(output.c.fund_code == fund_code)
            .order_by(output.c.month, output.c.unit, output.c.name),
        )


def table_counts(engine: Engine, fund_code: str) -> dict[str, int]:
    """Reconciliation counts after a load (rows per table for the fund)."""
    out = {}
    with engine.connect() as conn:
        for kind, spec in FACTS.items():
            out[kind] = int(
                conn.execute(
                    select(func.count()).select_from(spec.table).where(spec.table.c.fund_code == fund_code)
                ).scalar_one()
            )
    return out


def snapshot(engine: Engine, fund_code: str) -> dict[str, list[tuple]]:
    """Every fact row of a fund (without load bookkeeping): for idempotency tests."""
    out: dict[str, list[tuple]] = {}
    with engine.connect() as conn:
        for kind, spec in FACTS.items():
            cols = [spec.table.c[c] for c in spec.key + spec.values]
            rows = conn.execute(
                select(*cols).where(spec.table.c.fund_code == fund_code).order_by(*[spec.table.c[c] for c in spec.key])
            ).all()
            out[kind] = [tuple(r) for r in rows]
    return out


def read_audit(engine: Engine, fund_code: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [
            dict(r)
            for r in conn.execute(select(audit).where(audit.c.fund_code == fund_code).order_by(audit.c.id)).mappings()
        ]


def ping(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


__all__ = [
    "metadata",
    "fund",
    "source_file",
    "rejection",
    "goal",
    "allocation",
    "payment",
    "inspection",
    "output",
    "audit",
    "outbox",
    "FACTS",
    "open_store",
    "upgrade",
    "load_rows",
    "LoadStats",
    "archive_file",
    "sha256_of",
    "is_loaded",
    "upsert_fund",
    "record_rejection",
    "read_allocations",
    "read_goals",
    "read_payments_by_day",
    "read_inspections",
    "read_outputs",
    "net_paid_fen",
    "table_counts",
    "snapshot",
    "read_audit",
    "default_db_url",
    "default_home",
    "dispose_all",
    "month_close",
    "record_close",
    "closed_months",
    "latest_rejection",
    "ChunkedLoad",
    "stored_payment_amounts",
]
