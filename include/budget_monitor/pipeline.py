"""The monthly close and the year end: the functions the DAGs and the CLI both call.

A monthly close of fund-month (f, m) is three steps, each safe to re-run:

1. ``load_month``: every not-yet-loaded file of the fund directory whose rows
   are all dated on or before the end of m is read, validated and loaded
   atomically (one transaction per file). A bad file is moved to quarantine
   and reported; the run then fails with all reasons at once, after the good
   files landed. A file with rows after m waits for its month.
2. ``close_month``: execution vs pace per fund and unit, month and quarter;
   alerts are queued in the outbox (one per fund, unit, period and kind):
   as mails of their own (fund.yaml ``alerts.mode: each``, or an
   ``alerts.immediate`` kind), else held for the monthly digest, which
   ``gather_digests`` queues after every fund's close (one mail per
   recipient and month, outbox.gather).
3. ``send_pending``: the outbox is flushed; a failed send stays pending and is
   retried by the next flush.
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any
from collections.abc import Generator

from budget_monitor import store
from budget_monitor.config import FundConfig, load_fund_config
from budget_monitor.locks import FundBusy, fund_lock, fund_locks
from budget_monitor.intake.files import fund_files, unsafe_entries
from budget_monitor.kinds import DATE_COLUMN, FACT_KINDS, LOAD_ORDER
from budget_monitor.periods import QUARTER_ZH, TZ, month_bounds

if TYPE_CHECKING:
    from budget_monitor.yearend import YearEnd

log = logging.getLogger(__name__)


def lock_wait_s() -> float:
    """How long a run waits for a fund another run holds (BUDGET_MONITOR_LOCK_WAIT_S, default 60 s)."""
    return float(os.environ.get("BUDGET_MONITOR_LOCK_WAIT_S") or 60)


def discover_funds(root: Path) -> list[Path]:
    """Fund directories (those holding a fund.yaml) under ``root``, in name order."""
    root = Path(root)
    if (root / "fund.yaml").is_file():
        return [root]
    return sorted(p.parent for p in root.glob("*/fund.yaml"))


@dataclass
class FileOutcome:
    kind: str
    name: str
    status: str  # loaded | skipped | deferred | rejected
    rows: int = 0
    replaced: int = 0
    reason: str = ""


@dataclass
class LoadResult:
    fund_code: str
    month: str
    files: list[FileOutcome] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def rejected(self) -> list[FileOutcome]:
        return [f for f in self.files if f.status == "rejected"]

    def summary(self) -> str:
        by: dict[str, int] = {}
        for f in self.files:
            by[f.status] = by.get(f.status, 0) + 1
        return ", ".join(f"{k}={v}" for k, v in sorted(by.items())) or "no files"


class MonthRejected(Exception):
    """One or more files of the month were rejected (already quarantined).

    Raised by :func:`run_monthly` only after the month was closed for what
    landed and the outbox (with the 数据退回 notices) was flushed: ``monthly``
    is that run's result, None when raised by :func:`load_month` itself.
    """

    def __init__(self, result: LoadResult, monthly: MonthlyResult | None = None) -> None:
        self.result = result
        self.monthly = monthly
        reasons = [f.reason for f in result.rejected]
        super().__init__("；".join(reasons))

    @property
    def reason(self) -> str:
        return str(self)


def _records(df: Any, columns: list[str]) -> list[dict[str, Any]]:
    """DataFrame rows as plain Python values (int fen, datetime.date, str, None).

    Built from per-column lists: 3.7x faster than ``astype(object).to_dict("records")``
    on a 1M-row year, with the same values and types (bench/RESULTS.md R2).
    """
    import pandas as pd

    names, lists = [], []
    for col in columns:
        if col not in df.columns:
            continue
        series = df[col]
        if pd.api.types.is_datetime64_any_dtype(series):
            missing = series.isna().to_numpy().tolist()
            # Day ordinals -> date objects, one object per distinct day.
            ordinals = (series.to_numpy(dtype="datetime64[D]").astype("int64") + 719163).tolist()
            days: dict[int, date] = {}
            values = [
                None if gone else days.get(o) or days.setdefault(o, date.fromordinal(o))
                for o, gone in zip(ordinals, missing)
            ]
        elif str(series.dtype) == "Int64":
            values = [None if v is None else int(v) for v in series.to_numpy(dtype=object, na_value=None)]
        else:
            values = series.astype(object).where(series.notna(), None).tolist()
        names.append(col)
        lists.append(values)
    return [dict(zip(names, row)) for row in zip(*lists)]


def _store_columns(kind: str) -> list[str]:
    spec = store.FACTS[kind]
    return list(spec.key + spec.values)


def _max_month(table: Any, kind: str) -> str | None:
    col = DATE_COLUMN.get(kind)
    if col is None or table.df.empty or col not in table.df.columns:
        return None
    values = table.df[col].dropna()
    if values.empty:
        return None
    top = values.max()
    return top if isinstance(top, str) else f"{top.year:04d}-{top.month:02d}"


class _Contexts:
    """What each file of one fund's load is validated against: fund.yaml, the
    stored budget and goals, the stored total.

    The budget and goals are read from the store once per load, at its first
    fact file: they change only when their own files load, and those come
    first (LOAD_ORDER). The stored total is read per file (each payments file
    loaded changes it).
    """

    def __init__(self, engine: Any, cfg: FundConfig, fund_dir: Path) -> None:
        self.engine, self.cfg, self.fund_dir = engine, cfg, fund_dir
        self._facts: Any = None

    def __call__(self, kind: str, table: Any) -> Any:
        from dataclasses import replace

        from budget_monitor.validate import ValidationContext

        engine, cfg, fund_dir = self.engine, self.cfg, self.fund_dir
        if kind == "budget":
            # A corrected budget must still cover what each unit and allocation has paid.
            return ValidationContext.for_fund(
                cfg,
                fund_dir=fund_dir,
                paid_by_unit=store.net_paid_by(engine, cfg.code, "unit"),
                paid_by_doc=store.net_paid_by(engine, cfg.code, "doc_no"),
                paid_by_pair=store.net_paid_by_pair(engine, cfg.code),
            )
        if kind in store.SNAPSHOT_KINDS:
            return ValidationContext.for_fund(cfg, fund_dir=fund_dir)
        if self._facts is None:
            budget = store.read_allocations(engine, cfg.code)
            goals = store.read_goals(engine, cfg.code)
            self._facts = ValidationContext.for_fund(
                cfg,
                fund_dir=fund_dir,
                budget=budget if not budget.empty else None,
                goals=goals if not goals.empty else None,
            )
        replaced: list[str] = []
        if kind == "payments" and table is not None and "voucher_no" in table.df.columns:
            replaced = [v for v in table.df["voucher_no"].dropna().unique().tolist()]
        return replace(self._facts, stored_net_fen=store.net_paid_fen(engine, cfg.code, excluding=replaced))


def load_month(
    fund_dir: Path,
    month: str,
    db_url: str | None = None,
    *,
    cfg: FundConfig | None = None,
    raise_on_reject: bool = True,
) -> LoadResult:
    """Step 1 of the monthly close: read, validate and load the fund's new files."""
    fund_dir = Path(fund_dir)
    cfg = cfg or load_fund_config(fund_dir)
    engine = store.open_store(db_url)
    with fund_lock(engine, cfg.code, wait_s=lock_wait_s()):
        result = _drive(_load_steps(engine, cfg, fund_dir, month))
    if result.rejected and raise_on_reject:
        raise MonthRejected(result)
    return result


def _drive(steps: Generator[Any, Any, LoadResult]) -> LoadResult:
    """Run one fund's load steps, validating each file on its own."""
    from budget_monitor import validate

    try:
        request = next(steps)
        while True:
            try:
                report = validate.validate_table(*request)
            except Exception as exc:  # noqa: BLE001 - the generator turns it into the file's rejection
                request = steps.throw(exc)
            else:
                request = steps.send(report)
    except StopIteration as done:
        return done.value


@dataclass
class FundLoad:
    """One fund's part of :func:`load_months`: its result, or why it did not load."""

    fund_dir: Path
    cfg: FundConfig | None = None
    result: LoadResult | None = None
    error: BaseException | None = None


def load_months(fund_dirs: list[Path], month: str, db_url: str | None = None) -> list[FundLoad]:
    """Step 1 for many funds at once, with their small files validated together.

    Each fund goes through exactly the steps of :func:`load_month` (files in
    the same order, each validated against the store as its earlier files
    left it); only the validation is shared: at every step the files the
    funds wait on are validated in one :func:`validate.validate_batch` call,
    so Great Expectations' fixed cost per run is paid per step, not per file.
    One fund's failure (config, store, a bug) is recorded in its ``error`` and
    the other funds go on; rejected files are in ``result.rejected``. Every
    fund is locked for the load (locks.fund_locks); a fund another run holds
    gets FundBusy as its error and is left untouched.
    """
    engine = store.open_store(db_url)
    loads = [FundLoad(d) for d in map(Path, fund_dirs)]
    for load in loads:
        try:
            load.cfg = load_fund_config(load.fund_dir)
        except Exception as exc:  # noqa: BLE001 - one fund's failure must not stop the others
            load.error = exc
    codes = [load.cfg.code for load in loads if load.cfg is not None]
    with fund_locks(engine, codes, wait_s=lock_wait_s()) as busy:
        _load_in_lockstep(engine, [ld for ld in loads if ld.cfg is not None], month, busy)
    return loads


def _load_in_lockstep(engine: Any, loads: list[FundLoad], month: str, busy: dict[str, FundBusy]) -> None:
    from budget_monitor import validate

    running: dict[int, tuple[Any, Any]] = {}  # position -> (steps, the request it waits on)
    for n, load in enumerate(loads):
        assert load.cfg is not None
        if load.cfg.code in busy:
            load.error = busy[load.cfg.code]
            continue
        try:
            steps = _load_steps(engine, load.cfg, load.fund_dir, month)
            running[n] = (steps, next(steps))
        except StopIteration as done:
            load.result = done.value
        except Exception as exc:  # noqa: BLE001 - one fund's failure must not stop the others
            load.error = exc
    while running:
        order = list(running)
        requests = [running[n][1] for n in order]
        try:
            reports: list[Any] = validate.validate_batch(requests)
        except Exception:  # noqa: BLE001 - a batch failure: find the fund it belongs to
            log.exception("validating %d files together failed; validating them one by one", len(requests))
            reports = []
            for table, ctx in requests:
                try:
                    reports.append(validate.validate_table(table, ctx))
                except Exception as exc:  # noqa: BLE001 - thrown into its own fund below
                    reports.append(exc)
        for n, report in zip(order, reports, strict=True):
            steps = running.pop(n)[0]
            try:
                if isinstance(report, Exception):
                    request = steps.throw(report)
                else:
                    request = steps.send(report)
                running[n] = (steps, request)
            except StopIteration as done:
                loads[n].result = done.value
            except Exception as exc:  # noqa: BLE001 - as above
                loads[n].error = exc


def _load_steps(engine: Any, cfg: FundConfig, fund_dir: Path, month: str) -> Generator[Any, Any, LoadResult]:
    """The body of :func:`load_month` as a generator: it yields each file to
    validate as ``(table, context)`` and is sent back its ValidationReport,
    so that a caller can validate many funds' files together."""
    from budget_monitor import ingest, quarantine, validate

    _check_month(cfg, month)
    store.upsert_fund(engine, cfg.code, cfg.name, cfg.year, cfg.department)
    result = LoadResult(cfg.code, month)
    context = _Contexts(engine, cfg, fund_dir)
    files = fund_files(fund_dir)
    if not files.get("budget"):
        raise ValueError(f"{fund_dir.name}: 缺少预算指标表（budget.csv 或 budget.xlsx）")
    qdir = fund_dir / "quarantine"
    for entry in unsafe_entries(fund_dir):
        # A symlink, FIFO or device is never read: the entry itself is quarantined.
        moved, report = quarantine.quarantine_unsafe(entry.kind, entry.path, entry.reason, qdir, fund_dir=fund_dir)
        _reject(engine, cfg, result, entry.kind, report.file, report, moved)
    for kind in LOAD_ORDER:
        waiting = _missing_context(engine, cfg.code, kind)
        for path in files.get(kind, []):
            rel = validate.display_name(path, fund_dir)
            sha = store.sha256_of(path)
            if store.is_current(engine, cfg.code, kind, sha):
                result.files.append(FileOutcome(kind, rel, "skipped"))
                continue
            if waiting:
                # Never validate a fact file without the budget/goals it is checked
                # against: it would skip the unit, allocation and over-budget rules.
                result.files.append(FileOutcome(kind, rel, "deferred", reason=waiting))
                continue
            if ingest.is_streamed(path, kind):
                # A large CSV: read, validated and loaded chunk by chunk, here and now.
                report = _load_streamed(engine, cfg, month, kind, path, rel, sha, context, result)
                if report is not None:
                    _reject(engine, cfg, result, kind, rel, report, quarantine.quarantine(path, report, qdir))
                continue
            try:
                table = ingest.read_table(path, kind)
            except ingest.IngestError as exc:
                report = validate.report_for_ingest_error(exc, kind, context(kind, None))
            except Exception as exc:  # noqa: BLE001 - whatever breaks on this file is this file's
                report = _failure_report(path, kind, exc, context(kind, None))
            else:
                if kind in FACT_KINDS:
                    last = _max_month(table, kind)
                    # A row dated past the fund year is not "later": the in-year rule rejects it.
                    if last is not None and month < last <= f"{cfg.year}-12":
                        result.files.append(
                            FileOutcome(
                                kind, rel, "deferred", table.n_rows, reason=f"含 {last} 的数据，待该月结账时处理"
                            )
                        )
                        continue
                request = table, context(kind, table)  # a store error here is not the file's
                try:
                    report = yield request
                except Exception as exc:  # noqa: BLE001 - validation crashed on this file
                    report = _failure_report(path, kind, exc, request[1])
            if report.ok:
                for w in report.warnings:
                    log.warning("%s", w.message)
                try:
                    archived = store.archive_file(path, cfg.code, sha)
                    frame = table.df.assign(position=table.df["row"]) if kind == "goals" else table.df
                    stats = store.load_rows(
                        engine,
                        fund_code=cfg.code,
                        kind=kind,
                        name=rel,
                        sha256=sha,
                        rows=_records(frame, _store_columns(kind)),
                        encoding=table.encoding,
                        archive_path=str(archived),
                    )
                except _FILE_LOAD_ERRORS as exc:
                    # The database refused this file's values (the transaction rolled
                    # back: nothing of it landed). A lost connection, a full disk or
                    # a permission error is not the file's fault and propagates.
                    report = _failure_report(path, kind, exc, request[1])
                else:
                    result.files.append(
                        FileOutcome(kind, rel, "skipped" if stats.skipped else "loaded", table.n_rows, stats.replaced)
                    )
                    log.info("loaded %s: %d rows (%d replaced)", rel, table.n_rows, stats.replaced)
                    _record_docs(fund_dir, cfg, report, "loaded", path.name)
                    continue
            _reject(engine, cfg, result, kind, rel, report, quarantine.quarantine(path, report, qdir))
    result.counts = store.table_counts(engine, cfg.code)
    return result


# --------------------------------------------------------- large files, in chunks
#
# A fact CSV above ingest.stream_bytes() is never held whole: a 200 MB file of
# 1.6M payments took 1.5 GB through read_table + _records + load_rows (bench
# stage g). The decision stays the whole file's: a bad row anywhere rejects
# the file and nothing of it lands, with the same report as a whole read.

# Rows turned into dicts for the store at a time (a dict costs ~1 KB a row).
STREAM_LOAD_ROWS = 25_000


class _FileFault(Exception):
    """Wraps what went wrong reading or validating the streamed file (the file's
    fault, like read_table's and validate_table's errors): it becomes the
    file's rejection report. Anything else (the store, the disk) propagates."""


def _guarded(items: Any) -> Generator[Any, None, None]:
    """``items``, with an error raised while producing one wrapped in _FileFault."""
    it = iter(items)
    while True:
        try:
            item = next(it)
        except StopIteration:
            return
        except Exception as exc:  # noqa: BLE001 - the reading's failure is the file's
            raise _FileFault() from exc
        yield item
        del item  # not kept alive while the next one is read


def _load_streamed(
    engine: Any,
    cfg: FundConfig,
    month: str,
    kind: str,
    path: Path,
    rel: str,
    sha: str,
    context: _Contexts,
    result: LoadResult,
) -> Any:
    """One large CSV of a fact kind, read in chunks (ingest.CsvStream): the
    rejection report, or None when it was loaded or deferred (in ``result``).

    Not a step of the generator: its chunks are validated here, one after the
    other, so that its open transaction never waits on other funds' steps
    (load_months interleaves funds; on SQLite a second writer would wait on it).
    """
    from budget_monitor import ingest, validate

    ctx = context(kind, None)  # a store error here is not the file's
    try:
        try:
            stream = ingest.CsvStream(path, kind)
        except Exception as exc:  # noqa: BLE001 - as read_table's errors
            raise _FileFault() from exc
        with stream:
            return _stream_steps(engine, cfg, month, kind, path, rel, sha, stream, ctx, result)
    except _FileFault as fault:
        exc = fault.__cause__
        if isinstance(exc, ingest.IngestError):
            return validate.report_for_ingest_error(exc, kind, ctx)
        return _failure_report(path, kind, exc, ctx)


def _stream_steps(
    engine: Any,
    cfg: FundConfig,
    month: str,
    kind: str,
    path: Path,
    rel: str,
    sha: str,
    stream: Any,
    ctx: Any,
    result: LoadResult,
) -> Any:
    """The passes over an opened CsvStream (pass 0, the encoding, is done):
    the rejection report, or None when loaded or deferred (in ``result``).

    A good file is read once more (:func:`_stream_once`): chunk by chunk
    validated and loaded into one open transaction, committed after the last
    chunk. Anything else (a failing chunk, a key seen in an earlier chunk,
    a total over the budget, a row after the month, a value the store
    refuses) rolls that back and takes the exact passes (:func:`_stream_exact`),
    which give the whole read's decision and report.
    """
    from budget_monitor import ingest

    if stream.sha256 != sha:  # the file changed since it was hashed for is_current
        raise _FileFault() from ingest.changed_while_read(path)
    if _stream_once(engine, cfg, month, kind, path, rel, sha, stream, ctx, result):
        return None
    return _stream_exact(engine, cfg, month, kind, path, rel, sha, stream, ctx, result)


def _stream_once(
    engine: Any,
    cfg: FundConfig,
    month: str,
    kind: str,
    path: Path,
    rel: str,
    sha: str,
    stream: Any,
    ctx: Any,
    result: LoadResult,
) -> bool:
    """The single pass of a good file (validate.ChunkedFile.first_pass_context):
    True when the file was loaded (or must wait for its month), False when
    the exact passes must decide (nothing of it landed)."""
    from dataclasses import replace

    from budget_monitor import validate

    checks = validate.ChunkedFile(kind, ctx)
    # One GX run per GROUP_ROWS rows rather than one per chunk, where the rules allow it.
    verdicts = validate.ChunkVerdicts(kind, ctx)
    columns = _store_columns(kind)
    parts: list[Any] = []
    last: str | None = None
    rows = replaced_fen = 0
    with store.ChunkedLoad(
        engine, fund_code=cfg.code, kind=kind, name=rel, sha256=sha, encoding=stream.encoding
    ) as load:
        for table in _guarded(stream.tables()):
            rows += table.n_rows
            last = _later(last, _last_month(table.df[DATE_COLUMN[kind]]))
            if last is not None and last > month:
                # Not loaded in this run: it waits for its month, or the in-year rule rejects it.
                load.rollback()
                del table
                continue
            if kind == "payments":
                # Stored amounts of the vouchers it replaces (counted once: no voucher
                # is in two chunks of a file that passes).
                vouchers = table.df["voucher_no"].dropna().unique().tolist()
                replaced_fen += sum(store.stored_payment_amounts(engine, cfg.code, vouchers).values())
            try:
                chunk_ctx = checks.first_pass_context(table, ctx)
                if chunk_ctx is None:
                    return False
                if verdicts.usable:
                    verdicts.add(table, chunk_ctx)
                    good = verdicts.rows < verdicts.GROUP_ROWS or verdicts.passed()
                else:
                    parts.append(validate.validate_table(table, chunk_ctx))
                    good = parts[-1].ok
            except Exception as exc:  # noqa: BLE001 - validation crashed on this file
                raise _FileFault() from exc
            if not good or not _load_chunk(load, table, columns):
                return False
            del table  # one chunk alive at a time: not this one while the next is read
        if last is not None and last > month:
            if last <= f"{cfg.year}-12":
                result.files.append(
                    FileOutcome(kind, rel, "deferred", rows, reason=f"含 {last} 的数据，待该月结账时处理")
                )
                return True
            return False
        try:
            good = verdicts.passed() if verdicts.usable else True
        except Exception as exc:  # noqa: BLE001 - validation crashed on this file
            raise _FileFault() from exc
        if not good or checks.over_budget(replace(ctx, stored_net_fen=int(ctx.stored_net_fen) - replaced_fen)):
            return False
        report = verdicts.report() if verdicts.usable else validate.merge_reports(parts)
        _commit_streamed(load, cfg, kind, path, rel, sha, report, result, ctx.fund_dir)
    return True


def _stream_exact(
    engine: Any,
    cfg: FundConfig,
    month: str,
    kind: str,
    path: Path,
    rel: str,
    sha: str,
    stream: Any,
    ctx: Any,
    result: LoadResult,
) -> Any:
    """The exact passes, for a file the single pass could not accept.

    1. One narrow scan: the columns of the file-level rules
       (validate.ChunkedFile: key hashes, the file's total), the date column
       (a file with later rows waits, as a whole read does) and, for payments,
       the stored amounts of the vouchers the file replaces (the over-budget
       check must not count them twice, as _Contexts does); only when some
       key hashes clash, a second scan of the keys settles the duplicates.
    2. Every chunk validated against its context (ChunkedFile.context) and
       the reports merged (validate.merge_reports): the whole read's report.
    3. Only if it passed after all (two keys whose hashes clashed, a refused
       value that is now accepted): the chunks loaded in one transaction.
    """
    from dataclasses import replace

    from budget_monitor import validate

    checks = validate.ChunkedFile(kind, ctx)
    date_col = DATE_COLUMN[kind]
    voucher = "voucher_no" if kind == "payments" else None
    last: str | None = None
    replaced_fen = 0
    for chunk in _guarded(stream.scan([*checks.columns, date_col, *([voucher] if voucher else [])])):
        checks.scan(chunk)
        last = _later(last, _last_month(chunk[date_col]))
        if voucher:
            found = store.stored_payment_amounts(engine, cfg.code, chunk[voucher].dropna().tolist())
            replaced_fen += sum(found.values())
    if checks.candidates():
        for chunk in _guarded(stream.scan(checks.unique)):
            checks.resolve(chunk)
        if voucher in checks.unique:
            # A voucher held by several chunks was subtracted once per chunk: once is right.
            held = checks.chunks_holding(voucher)
            again = store.stored_payment_amounts(engine, cfg.code, list(held))
            replaced_fen -= sum((held[v] - 1) * fen for v, fen in again.items())
    if last is not None and month < last <= f"{cfg.year}-12":
        # A whole read counts the rows (blank lines are not rows) before deferring.
        rows = sum(t.n_rows for t in _guarded(stream.tables()))
        result.files.append(FileOutcome(kind, rel, "deferred", rows, reason=f"含 {last} 的数据，待该月结账时处理"))
        return None
    if voucher:
        ctx = replace(ctx, stored_net_fen=int(ctx.stored_net_fen) - replaced_fen)
    parts: list[Any] = []
    for table in _guarded(stream.tables()):
        try:
            parts.append(validate.validate_table(table, checks.context(table, ctx)))
        except Exception as exc:  # noqa: BLE001 - validation crashed on this file
            raise _FileFault() from exc
        del table
    report = validate.merge_reports(parts)
    if not report.ok:
        return report
    columns = _store_columns(kind)
    with store.ChunkedLoad(
        engine, fund_code=cfg.code, kind=kind, name=rel, sha256=sha, encoding=stream.encoding
    ) as load:
        for table in _guarded(stream.tables()):
            if not _load_chunk(load, table, columns):
                raise _FileFault() from load.error
            del table
        _commit_streamed(load, cfg, kind, path, rel, sha, report, result, ctx.fund_dir)
    return None


def _load_chunk(load: Any, table: Any, columns: list[str]) -> bool:
    """Add a chunk's rows to the load, STREAM_LOAD_ROWS dicts at a time; False
    when the database refused a value (``load.error``; rolled back, as with
    load_rows). In the single pass the rows may not be validated yet (a
    verdict comes every ChunkVerdicts.GROUP_ROWS rows): a refusal then sends
    the file to the exact passes, which report the bad value or ING-005."""
    for i in range(0, table.n_rows, STREAM_LOAD_ROWS):
        rows = _records(table.df.iloc[i : i + STREAM_LOAD_ROWS], columns)
        try:
            load.add(rows)
        except (*_FILE_LOAD_ERRORS, *load.refusals) as exc:
            load.error = exc
            load.rollback()
            return False
        del rows
    return True


def _commit_streamed(
    load: Any,
    cfg: FundConfig,
    kind: str,
    path: Path,
    rel: str,
    sha: str,
    report: Any,
    result: LoadResult,
    fund_dir: Path | None,
) -> None:
    """Archive the file and commit its load (as the whole-file branch does after validation)."""
    for w in report.warnings:
        log.warning("%s", w.message)
    archived = store.archive_file(path, cfg.code, sha)
    try:
        stats = load.commit(str(archived))
    except (*_FILE_LOAD_ERRORS, *load.refusals) as exc:
        raise _FileFault() from exc
    result.files.append(FileOutcome(kind, rel, "skipped" if stats.skipped else "loaded", report.n_rows, stats.replaced))
    log.info("loaded %s: %d rows (%d replaced) in chunks", rel, report.n_rows, stats.replaced)
    if fund_dir is not None:
        _record_docs(fund_dir, cfg, report, "loaded", path.name)


def _later(a: str | None, b: str | None) -> str | None:
    return b if a is None or (b is not None and b > a) else a


def _last_month(values: Any) -> str | None:
    """'YYYY-MM' of the latest date (or month text) of a typed column, as _max_month."""
    values = values.dropna()
    if values.empty:
        return None
    top = values.max()
    return top if isinstance(top, str) else f"{top.year:04d}-{top.month:02d}"


def _reject(engine: Any, cfg: FundConfig, result: LoadResult, kind: str, name: str, report: Any, moved: Path) -> None:
    """Record a quarantined file: the store's rejection row, the 数据退回 notice, the outcome."""
    from budget_monitor import alerts, outbox

    reason = report.first_reason()
    store.record_rejection(
        engine,
        fund_code=cfg.code,
        kind=kind,
        name=name,
        sha256=report.sha256,
        reason=reason,
        quarantine_path=str(moved),
    )
    # The quarantine is <fund_dir>/quarantine; the page is named as the quarantined file.
    _record_docs(moved.parent.parent, cfg, report, "rejected", moved.name, page=moved.name)
    if cfg.recipients:
        # Through the outbox: a failed send is retried, a re-sent file not re-announced.
        outbox.enqueue(engine, [alerts.build_rejection_email(cfg, report, moved)])
    result.files.append(FileOutcome(kind, name, "rejected", report.n_rows, reason=reason))
    # Reported once, by whoever catches MonthRejected (CLI stderr, task log).
    log.info("rejected %s: %s", name, reason)


def _record_docs(
    fund_dir: Path, cfg: FundConfig, report: Any, outcome: str, name: str, *, page: str | None = None
) -> None:
    """Keep a validation's result for the fund's Data Docs (validation/docs.py;
    the DAG renders the pages after the load). The docs are a view: a disk
    that refuses them is logged, never the file's or the load's failure."""
    from datetime import datetime

    from budget_monitor.validation import docs

    now = datetime.now(TZ)
    try:
        docs.record(
            fund_dir,
            report,
            outcome=outcome,
            page=page or docs.page_id(name, report.sha256, now),
            fund_code=cfg.code,
            fund_title=cfg.title,
            at=now,
        )
    except OSError:
        log.warning("%s: the data docs result of %s was not written", cfg.code, name, exc_info=True)


def _file_load_errors() -> tuple[type[BaseException], ...]:
    from sqlalchemy.exc import DataError, IntegrityError

    return (DataError, IntegrityError, ValueError, TypeError, OverflowError)


_FILE_LOAD_ERRORS = _file_load_errors()


def _failure_report(path: Path, kind: str, exc: BaseException, ctx: Any) -> Any:
    """The rejection report of a file whose reading, validation or loading
    failed unexpectedly (rule ING-005): the file is quarantined like any bad
    file instead of failing the run on every rerun; the traceback goes to the log."""
    from budget_monitor import ingest, validate

    log.error("processing %s failed", path, exc_info=exc)
    detail = (str(exc).strip().splitlines() or [""])[0][:200]
    what = f"{type(exc).__name__}：{detail}" if detail else type(exc).__name__
    err = ingest.IngestError(
        f"{path.name}: 文件处理时发生意外错误（{what}），整个文件未入库；请将此文件与本通知转交运维人员核查",
        path=path,
        rule_id="ING-005",
    )
    return validate.report_for_ingest_error(err, kind, ctx)


def _missing_context(engine: Any, fund_code: str, kind: str) -> str:
    """Why files of ``kind`` must wait (empty when they can be validated now)."""
    if kind not in FACT_KINDS:
        return ""
    counts = store.table_counts(engine, fund_code)
    if counts["budget"] == 0:
        return "预算指标表尚未通过校验入库，待其入库后处理"
    if kind == "outputs" and counts["goals"] == 0:
        return "绩效目标表尚未通过校验入库，待其入库后处理"
    return ""


def _check_month(cfg: FundConfig, month: str) -> tuple[date, date]:
    first, last = month_bounds(month)
    if first.year != cfg.year:
        raise ValueError(f"月份 {month} 不在专项资金年度 {cfg.year} 内")
    return first, last


# --------------------------------------------------------------------------- step 2


@dataclass
class CloseResult:
    fund_code: str
    month: str
    rate: Decimal | None
    pace: Decimal
    gap: Decimal | None
    severity: str | None
    lagging_quarters: list[int]
    units_behind: list[str]
    alerts: int
    new_alerts: int


def compute(engine: Any, cfg: FundConfig, through_month: int) -> Any:
    """Execution vs pace of the fund and its units, months 1..through_month, from the store."""
    from budget_monitor.execution import compute_execution

    allocations = store.read_allocations(engine, cfg.code)
    payments = store.read_payments_by_day(engine, cfg.code, month_bounds(f"{cfg.year}-{through_month:02d}")[1])
    return compute_execution(allocations, payments, year=cfg.year, through_month=through_month, pace=cfg.pace)


# The forecast learns from at most this many earlier years (spending habits drift).
FORECAST_YEARS_BACK = 5


def _without_year(text: str, year: int) -> str:
    return text.replace(str(year), "")


def forecast_history(engine: Any, cfg: FundConfig) -> Any:
    """The earlier years' monthly profiles the forecast uses (forecast.History): the
    fund's own (same code or name once the year is taken out: JM-2020-YPJG and
    JM-2021-YPJG) and the department's other funds', each computed through December
    from the store. Only whole earlier years: the current year's other funds are not done."""
    from budget_monitor.config import PaceConfig
    from budget_monitor.execution import compute_execution
    from budget_monitor.forecast import History, profile_of

    own, department = [], []
    code, name = _without_year(cfg.code, cfg.year), _without_year(cfg.name, cfg.year)
    for f in store.earlier_funds(engine, cfg.department, cfg.year, FORECAST_YEARS_BACK):
        allocations = store.read_allocations(engine, f["code"])
        if allocations.empty:
            continue
        payments = store.read_payments_by_day(engine, f["code"], date(f["year"], 12, 31))
        # The pace does not enter a profile (cumulative spending and budget only).
        series = compute_execution(allocations, payments, year=f["year"], through_month=12, pace=PaceConfig()).fund
        same = _without_year(f["code"], f["year"]) == code or _without_year(f["name"], f["year"]) == name
        (own if same else department).append(profile_of(series, f["code"], f["year"]))
    return History(own=tuple(own), department=tuple(department))


def close_month(
    fund_dir: Path,
    month: str,
    db_url: str | None = None,
    *,
    cfg: FundConfig | None = None,
    chart: bool = True,
) -> CloseResult:
    """Step 2: execution vs pace at the month end; alerts queued once per key."""
    from budget_monitor import alerts, contacts, outbox

    cfg = cfg or load_fund_config(Path(fund_dir))
    first, _ = _check_month(cfg, month)
    # The department's contacts (contacts.csv beside the fund directories): a
    # bad file stops the close before anything is queued to the wrong people.
    people = contacts.for_fund_dir(fund_dir)
    engine = store.open_store(db_url)
    with fund_lock(engine, cfg.code, wait_s=lock_wait_s()):
        result = compute(engine, cfg, first.month)
        # Read only if a mail with a forecast is rendered now (not for the digest).
        history = functools.cache(functools.partial(forecast_history, engine, cfg))
        due = alerts.due(cfg, result, first.month, history=history)  # including those queued by an earlier run
        queued = outbox.queued_keys(engine, cfg.code)
        fresh = [d for d in due if d.key not in queued]
        # fund.yaml alerts: a mail of its own now (mode each, or an immediate
        # kind), else held for the recipients' monthly digest (gather_digests).
        now = [d for d in fresh if cfg.alerts.at_once(d.key[3], d.severity)]
        later = [alerts.hold(cfg, d, people) for d in fresh if not cfg.alerts.at_once(d.key[3], d.severity)]
        built = alerts.build_alerts(cfg, result, first.month, chart=chart, contacts=people, dues=now)
        new = outbox.enqueue(engine, built) + outbox.hold(engine, later)
        store.record_close(engine, cfg.code, month)
        m = result.fund.month(first.month)
        return CloseResult(
            fund_code=cfg.code,
            month=month,
            rate=m.rate_2dp,
            pace=m.pace_2dp,
            gap=m.gap_2dp,
            severity=m.severity,
            lagging_quarters=result.fund.lagging_quarters,
            units_behind=[s.unit for s in result.units if s.month(first.month).severity],
            alerts=len(due),
            new_alerts=new,
        )


@dataclass
class FundClose:
    """One fund's part of :func:`close_months`: its result, or why it did not close."""

    fund_dir: Path
    result: CloseResult | None = None
    error: BaseException | None = None


def close_months(fund_dirs: list[Path], month: str, db_url: str | None = None) -> list[FundClose]:
    """Step 2 for many funds, one after the other, in this process.

    Each fund is exactly :func:`close_month`; a fund's failure is recorded in
    its ``error`` (with its ``__traceback__``) and the other funds go on. The
    DAG calls this once per batch of funds, a mapped task per batch, so the
    executor spreads the close over its worker slots; the CLI closes its fund
    with :func:`run_monthly`.
    """
    out: list[FundClose] = []
    for d in map(Path, fund_dirs):
        try:
            out.append(FundClose(d, close_month(d, month, db_url)))
        except Exception as exc:  # noqa: BLE001 - one fund's failure must not stop the others
            out.append(FundClose(d, error=exc))
    return out


def gather_digests(month: str, db_url: str | None = None) -> int:
    """Step 2b, after every fund's close: queue the month's digests, one per
    recipient of the alerts held for them (outbox.gather); the number queued."""
    from budget_monitor import outbox

    return outbox.gather(store.open_store(db_url), month)


# --------------------------------------------------------------------------- step 3


def send_pending(db_url: str | None, mailer: Any, fund_code: Any = None, *, deadline_s: float | None = None) -> Any:
    """Step 3: flush the outbox; failures stay pending for the next run
    (``deadline_s``: see outbox.flush, default from the environment)."""
    from budget_monitor import outbox

    return outbox.flush(store.open_store(db_url), mailer, fund_code, deadline_s=deadline_s)


@dataclass
class MonthlyResult:
    load: LoadResult
    close: CloseResult
    sent: int = 0
    failed: int = 0
    unsent: int = 0  # the fund's messages still pending after the flush
    stopped: str = ""  # why the flush stopped early (deadline, server down), Chinese

    def summary(self) -> str:
        c = self.close
        rate = "—" if c.rate is None else f"{c.rate}%"
        gap = "—" if c.gap is None else f"{c.gap}"
        lag = "、".join(QUARTER_ZH[q] for q in c.lagging_quarters) or "无"
        return (
            f"{c.fund_code} {c.month}: 执行率 {rate}，序时进度 {c.pace}%，差 {gap} 个百分点；"
            f"落后季度：{lag}；文件 {self.load.summary()}；"
            f"预警 {c.alerts} 条（新 {c.new_alerts}），发送成功 {self.sent}，失败 {self.failed}"
            + (f"，待发送 {self.unsent}" if self.unsent else "")
        )


def run_monthly(
    fund_dir: Path,
    month: str,
    db_url: str | None = None,
    mailer: Any | None = None,
) -> MonthlyResult:
    """The whole monthly close of one fund: load, compute + queue alerts, send.

    As the DAG does it: a rejected file does not stop the month. The close
    runs for what landed and the outbox is flushed (the 数据退回 notice goes
    out in this run); then :class:`MonthRejected` is raised with this result.
    """
    fund_dir = Path(fund_dir)
    cfg = load_fund_config(fund_dir)
    with fund_lock(store.open_store(db_url), cfg.code, wait_s=lock_wait_s()):
        loaded = load_month(fund_dir, month, db_url, cfg=cfg, raise_on_reject=False)
        closed = close_month(fund_dir, month, db_url, cfg=cfg)
        gather_digests(month, db_url)
        result = MonthlyResult(loaded, closed)
        if mailer is not None:
            from budget_monitor.alerts import DIGEST_FUND

            # The fund's own mails and the digests (which span the department's funds).
            _record_flush(result, send_pending(db_url, mailer, (cfg.code, DIGEST_FUND)))
    if loaded.rejected:
        raise MonthRejected(loaded, result)
    return result


# --------------------------------------------------------------------------- year end


@dataclass
class YearEndResult:
    fund_code: str
    year: int
    out_dir: Path
    paths: list[Path]
    total_score: float
    grade: str
    queued: int = 0
    sent: int = 0
    failed: int = 0
    unsent: int = 0
    stopped: str = ""

    def summary(self) -> str:
        return (
            f"{self.fund_code} {self.year}年度自评：{self.total_score:g}分，等级{self.grade}；"
            f"输出 {len(self.paths)} 个文件于 {self.out_dir}；邮件发送成功 {self.sent}，失败 {self.failed}"
            + (f"，待发送 {self.unsent}" if self.unsent else "")
        )


class YearNotReady(ValueError):
    """The year-end report cannot be made yet; the message (Chinese) says why and what to do."""


def _goals_or_reason(engine: Any, cfg: FundConfig) -> Any:
    """The stored goals; without any, a YearNotReady naming the rejected goals
    file and its rule (not a misleading "分值合计为0分")."""
    goals = store.read_goals(engine, cfg.code)
    if not goals.empty:
        return goals
    rejected = store.latest_rejection(engine, cfg.code, "goals")
    if rejected is not None:
        raise YearNotReady(
            f"绩效目标表 {rejected['name']} 未通过校验，已于 {rejected['rejected_at']:%Y-%m-%d %H:%M} 退回"
            f"（{rejected['reason']}）；请更正后重新提交，待其入库后再生成年度自评"
        )
    raise YearNotReady("尚未入库绩效目标表（goals.csv 或 goals.xlsx）：请提交后运行月度结账，再生成年度自评")


def evaluate_year(engine: Any, cfg: FundConfig, fund_dir: Path | None = None) -> YearEnd:
    """The fund-year's result (the year-end model every output is written from), from the store,
    stamped with its provenance (input files, fund.yaml in ``fund_dir``, code and rules digests)."""
    from budget_monitor import feedback
    from budget_monitor.budget import totals_by_source
    from budget_monitor.measures import measure_actuals
    from budget_monitor.provenance import read_provenance
    from budget_monitor.writers.form_layout import achievement_texts
    from budget_monitor.yearend import build_year_end, with_provenance

    goals = _goals_or_reason(engine, cfg)
    result = compute(engine, cfg, 12)
    actuals = measure_actuals(
        cfg,
        goals,
        store.read_inspections(engine, cfg.code),
        store.read_outputs(engine, cfg.code),
        result.fund.latest.rate_2dp,
    )
    stories = feedback.quarter_stories(
        feedback.requests(engine, cfg.code, cfg.year),
        [q.quarter for q in result.fund.quarters if q.lagging],
        cfg.lag_causes,
    )
    answered = [q for q, s in stories.items() if s.source == "answered"]
    tags = dict(cfg.self_evaluation.fund_sources)
    by_source = (
        totals_by_source(store.read_allocations(engine, cfg.code), store.net_paid_by(engine, cfg.code, "doc_no"), tags)
        if tags
        else None
    )
    model = build_year_end(
        cfg,
        goals,
        actuals,
        result,
        causes={q: s.cause for q, s in stories.items() if s.cause},
        measures={q: stories[q].measures for q in answered},
        answered=answered,
        by_source=by_source,
        achievements=achievement_texts,
    )
    return with_provenance(model, read_provenance(engine, cfg.code, fund_dir))


def year_end_revision(engine: Any, fund_code: str, year: int, digest: str) -> int | None:
    """Which year-end mail this evaluation needs: 0 the first, n the n-th corrected
    report, None none (the last one mailed or queued says the same).

    A re-run of the year-end with the same data sends nothing again; after a
    correction of the data (a late payment, a fixed goal) it sends the report
    once more, marked as a correction. A stored mail without a digest (queued
    before digests were recorded) counts as the same report: never a mail
    the office did not need.
    """
    from budget_monitor import alerts, outbox

    earlier = [
        (period, headers.get(alerts.DIGEST_HEADER))
        for period, headers in outbox.stored_headers(engine, fund_code, alerts.YEAR_END_REPORT)
        if alerts.is_year_end_period(period, year)
    ]
    if not earlier:
        return 0
    last = earlier[-1][1]
    if last is None or str(last).strip() == digest:
        return None
    return len(earlier)


def check_year_closed(engine: Any, cfg: FundConfig) -> None:
    """Raise YearNotReady unless December of the fund year was closed."""
    closed = store.closed_months(engine, cfg.code)
    december = f"{cfg.year}-12"
    if december not in closed:
        last = f"最近结账月份为 {closed[-1]}" if closed else "尚无任何月份结账"
        raise YearNotReady(
            f"{cfg.year}年12月尚未结账（{last}），不能生成正式的年度自评报告；"
            f"请先完成12月的月度结账，或加 --draft 生成草稿（草稿不发送）"
        )


def run_year_end(
    fund_dir: Path,
    year: int,
    out_dir: Path,
    db_url: str | None = None,
    mailer: Any | None = None,
    *,
    queue: bool = True,
    draft: bool = False,
    approval: Any | None = None,
) -> YearEndResult:
    """Write the fund-year's self-evaluation outputs and queue (and send) the report email.

    Refused (YearNotReady) until December is closed, unless ``draft``: a
    draft is marked 草稿 in every output and is never queued or mailed.
    ``queue=False`` writes the outputs and queues nothing. ``approval`` (an
    approval.Decision) is the finance office's sign-off, written into the
    report's provenance; a decision other than approved is refused.
    """
    from budget_monitor import outbox, writers
    from budget_monitor.money_fmt import round2
    from budget_monitor.yearend import with_approval, with_draft

    cfg = load_fund_config(Path(fund_dir))
    if year != cfg.year:
        raise ValueError(f"年度 {year} 与 fund.yaml 的年度 {cfg.year} 不符")
    engine = store.open_store(db_url)
    with fund_lock(engine, cfg.code, wait_s=lock_wait_s()):
        if not draft:
            check_year_closed(engine, cfg)
        model = evaluate_year(engine, cfg, Path(fund_dir))
        if draft:
            model = with_draft(model)
        if approval is not None:
            if not approval.approved:
                raise YearNotReady(f"{cfg.year}年度自评报告已被退回（{approval.comment or ''}），更正后重新运行")
            model = with_approval(model, approval.provenance())
        paths = writers.write_outputs(model, cfg, Path(out_dir))
        total = float(round2(model.total_score))
        if draft or not queue:
            return YearEndResult(cfg.code, year, Path(out_dir), paths, total, model.grade)
        digest = writers.mail_writer.digest(model)
        revision = year_end_revision(engine, cfg.code, year, digest)
        queued = 0
        if revision is not None:
            mail = writers.year_end_mail(model, cfg, paths, revision=revision, report_digest=digest)
            queued = outbox.enqueue(engine, [mail])
        result = YearEndResult(cfg.code, year, Path(out_dir), paths, total, model.grade, queued=queued)
        if mailer is not None:
            _record_flush(result, outbox.flush(engine, mailer, cfg.code))
        return result


def _record_flush(result: MonthlyResult | YearEndResult, flushed: Any) -> None:
    result.sent, result.failed = flushed.sent, flushed.failed
    result.unsent = int(getattr(flushed, "remaining", flushed.failed))
    result.stopped = str(getattr(flushed, "stopped", "") or "")
