"""Read one CSV/XLSX table file into a typed, canonical DataFrame.

Everything is read as text first (``dtype=str``, ``keep_default_na=False``) and
converted by money.py / dates.py, so that a cell that cannot be read becomes a
null in the typed column while its raw text stays in ``raw`` for the message.
Whether nulls are acceptable is validate.py's business (rules as data); ingest
only refuses files it cannot read at all (:class:`IngestError`: encoding,
corrupt XLSX, missing required columns).

Typed columns (see rules/tables.csv and docs/architecture.md); dates are
``datetime64[s]`` at midnight (``dates.to_date_objects`` gives datetime.date),
money is ``Int64`` fen, goal weights are ``Decimal``. ``row`` is the 1-based
row number as the finance office sees it (header = row 1).
"""

from __future__ import annotations

import codecs
import hashlib
import io
import os
import re
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from budget_monitor.dates import parse_dates, parse_months
from budget_monitor.money import parse_money
from budget_monitor.tables import ColumnSpec, HeaderError, HeaderMatch, match_headers, specs

from budget_monitor.kinds import FACT_KINDS

ENCODINGS: tuple[str, ...] = ("utf-8-sig", "utf-8", "gb18030")
# Thousands separators only in groups of three, as for money (money.py).
_NUM_RE = r"^[-+]?(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?|\.\d+)%?$"
_FIELDS_RE = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


class IngestError(ValueError):
    """The file cannot be read as a table of its kind; the message is Chinese
    and names the file (``rule_id`` says which ingest rule, see validation_rules.csv)."""

    def __init__(self, message: str, *, path: Path, rule_id: str, column: str | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.rule_id = rule_id
        self.column = column


@dataclass
class IngestedTable:
    path: Path
    kind: str
    sha256: str
    encoding: str | None  # CSV only; None for XLSX
    df: pd.DataFrame  # canonical typed columns + ``row``
    raw: pd.DataFrame  # the file's own headers, all text, same index as df
    headers: dict[str, HeaderMatch]  # canonical column -> header as written
    # canonical column -> bool array: the cell was empty (after trimming)
    empty: dict[str, np.ndarray] = field(default_factory=dict)
    # canonical column -> bool array: non-empty but unreadable (money/date/number)
    invalid: dict[str, np.ndarray] = field(default_factory=dict)
    # money column -> bool array: a well-formed amount of 1 万亿元 or more (money.MAX_ABS_FEN)
    out_of_range: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n_rows(self) -> int:
        return len(self.df)

    def header_of(self, column: str) -> str:
        """The header as written in the file (for messages), else the contract's."""
        m = self.headers.get(column)
        if m is not None:
            return m.source
        for s in specs(self.kind):
            if s.column == column:
                return s.header_zh
        return column

    def raw_value(self, column: str, row: int) -> str:
        m = self.headers.get(column)
        if m is None or row not in self.raw.index:
            return ""
        return str(self.raw.at[row, m.source])

    @property
    def problems(self) -> list[tuple[str, int, str]]:
        """(column, row, raw text) of every unreadable cell, for quick looks."""
        out = []
        rows = self.df["row"].to_numpy()
        for col, bad in self.invalid.items():
            for i in np.flatnonzero(bad):
                out.append((col, int(rows[i]), self.raw_value(col, int(rows[i]))))
        return out


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def decode_csv_bytes(data: bytes, path: Path) -> tuple[str, str]:
    """Return (text, encoding): utf-8-sig (BOM), utf-8, then gb18030, strictly."""
    for enc in ENCODINGS:
        if enc == "utf-8-sig" and not data.startswith(b"\xef\xbb\xbf"):
            continue
        try:
            text = data.decode(enc, errors="strict")
        except UnicodeDecodeError:
            continue
        # NUL never occurs in a text export; it means UTF-16/binary decoded by luck.
        if "\x00" in text:
            break
        return text, enc
    raise IngestError(
        f"{path.name}: 编码无法识别（应为 UTF-8 或 GBK/GB18030 编码的 CSV）", path=path, rule_id="ING-001"
    )


def _read_csv(data: bytes, path: Path) -> tuple[pd.DataFrame, str]:
    text, enc = decode_csv_bytes(data, path)
    if not text.strip():
        raise IngestError(f"{path.name}: 文件为空，没有表头", path=path, rule_id="ING-003")
    if enc == "utf-8-sig":
        payload = data[3:]
    elif enc == "utf-8":
        payload = data
    else:
        # pandas' C parser reads UTF-8 natively; transcode the checked text once.
        payload = text.encode("utf-8")
    del text
    try:
        frame = pd.read_csv(
            io.BytesIO(payload),
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            skip_blank_lines=False,
            encoding="utf-8",
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise _format_error(exc, path) from exc
    if not isinstance(frame.index, pd.RangeIndex):
        raise _surplus_fields(path)
    return frame, enc


def _format_error(exc: BaseException, path: Path) -> IngestError:
    m = _FIELDS_RE.search(str(exc))
    detail = f"第{m.group(2)}行有 {m.group(3)} 个字段，表头只有 {m.group(1)} 列" if m else str(exc)
    return IngestError(f"{path.name}: CSV 格式错误：{detail}", path=path, rule_id="ING-002")


def _surplus_fields(path: Path) -> IngestError:
    # pandas turns surplus leading fields into an index: the data rows have
    # more fields than the header (e.g. an unquoted "1,234.50").
    return IngestError(
        f"{path.name}: CSV 格式错误：数据行的字段比表头多（金额中的千分位逗号是否未加引号？）",
        path=path,
        rule_id="ING-002",
    )


# Bounds checked on the zip directory before an XLSX is parsed: a 1 MB file
# that inflates to 1 GiB once took 3.3 GB of memory and then crashed the run.
# An XLSX of Excel's full 1,048,576 rows x 16 columns inflates to ~400-600 MiB
# at a ratio of 5-20x; the limits sit above that. The ratio bound is Apache
# POI's ZipSecureFile default (MIN_INFLATE_RATIO 0.01), applied to entries over
# 1 MiB so that tiny, highly repetitive parts (styles) pass. Env overrides.
XLSX_MAX_UNCOMPRESSED = int(os.environ.get("BUDGET_MONITOR_XLSX_MAX_BYTES", 768 << 20))
XLSX_MAX_RATIO = float(os.environ.get("BUDGET_MONITOR_XLSX_MAX_RATIO", 100))
XLSX_MAX_CELLS = int(os.environ.get("BUDGET_MONITOR_XLSX_MAX_CELLS", 1_048_576 * 32))
_DIMENSION_RE = re.compile(rb'<(?:\w+:)?dimension ref="[A-Z]+(\d+)(?::([A-Z]+)(\d+))?"')


def _column_number(letters: str) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + ord(ch) - 64
    return n


def _check_xlsx_bounds(zf: zipfile.ZipFile, path: Path) -> None:
    """Refuse a zip bomb before parsing: total inflated size, per-entry inflate
    ratio, and the first sheet's declared cell range."""
    total = 0
    for info in zf.infolist():
        total += info.file_size
        if info.file_size > (1 << 20) and info.file_size > XLSX_MAX_RATIO * max(info.compress_size, 1):
            raise IngestError(
                f"{path.name}: XLSX 文件中的“{info.filename}”解压后 {info.file_size / (1 << 20):.0f} MiB，"
                f"是压缩后的 {info.file_size / max(info.compress_size, 1):.0f} 倍，疑似压缩炸弹，拒绝读取",
                path=path,
                rule_id="ING-004",
            )
    if total > XLSX_MAX_UNCOMPRESSED:
        raise IngestError(
            f"{path.name}: XLSX 文件解压后共 {total / (1 << 20):.0f} MiB，超过上限 "
            f"{XLSX_MAX_UNCOMPRESSED >> 20} MiB，请拆分或另存为 CSV",
            path=path,
            rule_id="ING-004",
        )
    sheets = sorted(n for n in zf.namelist() if n.startswith("xl/worksheets/sheet") and n.endswith(".xml"))
    if sheets:
        with zf.open(sheets[0]) as fh:
            m = _DIMENSION_RE.search(fh.read(4096))
        if m and m.group(2):
            cells = int(m.group(3)) * _column_number(m.group(2).decode())
            if cells > XLSX_MAX_CELLS:
                raise IngestError(
                    f"{path.name}: XLSX 工作表声明了 {cells} 个单元格，超过上限 {XLSX_MAX_CELLS}，请拆分或另存为 CSV",
                    path=path,
                    rule_id="ING-004",
                )


def _read_xlsx(data: bytes, path: Path) -> pd.DataFrame:
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise IngestError(f"{path.name}: XLSX 文件已损坏或不完整，无法打开", path=path, rule_id="ING-002")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            _check_xlsx_bounds(zf, path)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise IngestError(f"{path.name}: XLSX 文件已损坏或不完整，无法打开", path=path, rule_id="ING-002") from exc
    try:
        frame = pd.read_excel(io.BytesIO(data), sheet_name=0, engine="calamine", dtype=str, keep_default_na=False)
    except Exception as exc:  # calamine raises its own error types; any of them means unreadable
        raise IngestError(
            f"{path.name}: XLSX 文件已损坏或不完整，无法打开（{type(exc).__name__}）", path=path, rule_id="ING-002"
        ) from exc
    return frame


def read_table(path: Path, kind: str) -> IngestedTable:
    """Read ``path`` (CSV or XLSX) as a table of ``kind``; raise IngestError."""
    path = Path(path)
    specs(kind)  # unknown kind -> ValueError early
    try:
        data = _read_no_follow(path)
    except OSError as exc:
        raise IngestError(f"{path.name}: 无法读取文件：{exc.strerror}", path=path, rule_id="ING-002") from exc
    digest = sha256_bytes(data)
    suffix = path.suffix.lower()
    encoding: str | None = None
    if suffix in (".xlsx", ".xlsm"):
        raw = _read_xlsx(data, path)
    elif suffix in (".csv", ".txt"):
        raw, encoding = _read_csv(data, path)
    else:
        raise IngestError(f"{path.name}: 不支持的文件类型“{suffix}”（应为 CSV 或 XLSX）", path=path, rule_id="ING-002")
    raw = _tidy(raw)
    try:
        headers = match_headers(kind, [str(c) for c in raw.columns])
    except HeaderError as exc:
        raise IngestError(f"{path.name}: {exc}", path=path, rule_id="ING-003") from exc
    df, raw, empty, invalid, out_of_range = _typed(raw, kind, headers)
    return IngestedTable(path, kind, digest, encoding, df, raw, headers, empty, invalid, out_of_range)


def _read_no_follow(path: Path) -> bytes:
    """The file's bytes, refusing a symlink put in its place after the fund
    directory was listed (files.fund_files never returns one)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as fh:
        return fh.read()


def _tidy(raw: pd.DataFrame) -> pd.DataFrame:
    """All cells as text, string headers, index = file row numbers."""
    keep = [not str(c).startswith("Unnamed:") or raw[c].astype("str").str.strip().ne("").any() for c in raw.columns]
    raw = raw.loc[:, keep]
    raw.columns = [str(c).strip() for c in raw.columns]
    if any(str(dt) != "str" for dt in raw.dtypes):
        raw = raw.fillna("").astype("str")
    raw.index = pd.RangeIndex(2, 2 + len(raw))
    return raw


def _typed_table(raw: pd.DataFrame, kind: str, headers: dict[str, HeaderMatch]) -> tuple[Any, ...]:
    """IngestedTable's fields after ``encoding``: df, raw, headers, empty, invalid, out_of_range."""
    df, raw, empty, invalid, out_of_range = _typed(raw, kind, headers)
    return df, raw, headers, empty, invalid, out_of_range


def _typed(
    raw: pd.DataFrame, kind: str, headers: dict[str, HeaderMatch]
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]:
    cols: dict[str, pd.Series] = {"row": pd.Series(raw.index.to_numpy(dtype="int64"), index=raw.index)}
    empty: dict[str, np.ndarray] = {}
    invalid: dict[str, np.ndarray] = {}
    out_of_range: dict[str, np.ndarray] = {}
    for spec in specs(kind):
        _typed_column(raw, spec, headers.get(spec.column), cols, empty, invalid, out_of_range)
    if kind == "payments":
        # 业务类型 is optional: absent or empty means an ordinary payment.
        cols["kind"] = cols["kind"].mask(empty["kind"], "支付")
    n = len(raw)
    df = pd.DataFrame(cols, index=raw.index)
    # Wholly blank lines (also blank in extra columns) are not rows; their
    # numbers stay skipped so later rows keep the number the office sees.
    blank = np.logical_and.reduce([empty[c] for c in headers]) if headers and n else np.zeros(n, dtype=bool)
    if blank.any():
        others = [c for c in raw.columns if c not in {m.source for m in headers.values()}]
        for c in others:
            blank[blank] &= (raw[c][blank].str.strip() == "").to_numpy(dtype=bool)
    if blank.any():
        keep = ~blank
        df, raw = df[keep], raw[keep]
        empty = {k: v[keep] for k, v in empty.items()}
        invalid = {k: v[keep] for k, v in invalid.items()}
        out_of_range = {k: v[keep] for k, v in out_of_range.items()}
    return df, raw, empty, invalid, out_of_range


def _typed_column(
    raw: pd.DataFrame,
    spec: ColumnSpec,
    match: HeaderMatch | None,
    cols: dict[str, pd.Series],
    empty: dict[str, np.ndarray],
    invalid: dict[str, np.ndarray],
    out_of_range: dict[str, np.ndarray],
) -> None:
    """One canonical column of ``raw`` typed into ``cols`` (and its masks): the
    one conversion both a whole file and a streamed file's passes use."""
    source = raw[match.source] if match else pd.Series([""] * len(raw), index=raw.index, dtype="str")
    if spec.type in ("money", "date"):
        # These parsers trim in numpy themselves.
        res = parse_money(source, match.scale if match else 1) if spec.type == "money" else parse_dates(source)
        cols[spec.column] = res.fen if spec.type == "money" else res.values
        empty[spec.column] = res.empty.to_numpy(dtype=bool)
        invalid[spec.column] = res.invalid.to_numpy(dtype=bool)
        if spec.type == "money":
            out_of_range[spec.column] = res.out_of_range.to_numpy(dtype=bool)
        return
    text = source.str.strip()
    is_empty = (text == "").to_numpy(dtype=bool)
    empty[spec.column] = is_empty
    if spec.type == "month":
        res = parse_months(text)
        cols[spec.column] = res.values
        invalid[spec.column] = res.invalid.to_numpy(dtype=bool)
    elif spec.type == "decimal":
        values, bad = _decimals(text)
        cols[spec.column] = values
        invalid[spec.column] = bad
    elif spec.type == "number_text":
        values, _ = _decimals(text)
        cols[spec.column] = text
        cols[spec.column + "_num"] = values  # null for qualitative text (达成 ...)
    elif spec.type == "str" and spec.required:
        cols[spec.column] = text.mask(is_empty)  # null -> the not-null rule reports it
    else:
        cols[spec.column] = text


def _decimals(text: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Small columns only (weights, output values): exact Decimal per cell."""
    ok = text.str.match(_NUM_RE)
    norm = text.str.replace(",", "", regex=False)
    out = pd.Series([None] * len(text), index=text.index, dtype="object")
    for idx, val in norm[ok].items():
        try:
            out[idx] = Decimal(val.rstrip("%"))
        except InvalidOperation:
            ok[idx] = False
    bad = ((text != "") & ~ok).to_numpy(dtype=bool)
    return out, bad


# --------------------------------------------------------------- large CSVs, in chunks
#
# read_table holds a file's bytes, its decoded text, pandas' all-text frame and
# the typed frame at once, and the loader then adds a dict per row: a 200 MB
# CSV of 1.6M payments peaked at 1.5 GB. A fact CSV above stream_bytes() is
# read in chunks of stream_chunk_rows() records instead (pipeline's streamed
# branch), so memory follows the chunk, not the file. XLSX (bounded by
# XLSX_MAX_* above), goals and budget files are always read whole.

STREAM_KINDS: tuple[str, ...] = FACT_KINDS
_BOM = b"\xef\xbb\xbf"
_BLOCK = 1 << 20


def stream_bytes() -> int:
    """CSV files above this size are read in chunks (env BUDGET_MONITOR_STREAM_BYTES, default 32 MiB)."""
    return int(os.environ.get("BUDGET_MONITOR_STREAM_BYTES") or 32 << 20)


# Cells per chunk: a chunk's memory follows its cells (a Python str per cell,
# ~60 bytes before its text), not its bytes. 1.6M cells are 200,000 rows of
# the 8 payments columns: ~165 MiB above the process's base in bench stage g.
STREAM_CHUNK_CELLS = 1_600_000


def stream_chunk_rows(columns: int = 8) -> int:
    """Records per chunk: env BUDGET_MONITOR_STREAM_CHUNK_ROWS, else
    STREAM_CHUNK_CELLS spread over the file's ``columns``."""
    env = os.environ.get("BUDGET_MONITOR_STREAM_CHUNK_ROWS")
    return max(int(env) if env else STREAM_CHUNK_CELLS // max(columns, 1), 1)


def is_streamed(path: Path, kind: str) -> bool:
    """Is ``path`` read in chunks (a fact kind's CSV above :func:`stream_bytes`)?"""
    if kind not in STREAM_KINDS or Path(path).suffix.lower() not in (".csv", ".txt"):
        return False
    try:
        return os.lstat(path).st_size > stream_bytes()
    except OSError:
        return False  # the whole-file read reports why it cannot be read


class _Hashing(io.RawIOBase):
    """Reads through ``fh``, hashing every byte on the way (closing it leaves ``fh`` open)."""

    def __init__(self, fh: io.BufferedReader, digest: Any) -> None:
        super().__init__()
        self._fh, self._digest = fh, digest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self._fh.readinto(buffer) or 0
        if n:
            self._digest.update(memoryview(buffer)[:n])
        return n


class CsvStream:
    """A large CSV read in chunks, each chunk exactly as :func:`read_table` reads
    a whole file (same encoding rule, header matching, typing, row numbers).

    - pass 0 (on opening): the encoding, by the rule of :func:`decode_csv_bytes`
      (utf-8-sig, utf-8, gb18030, strict, NUL refused) with an incremental
      decoder over 1 MiB blocks, and the file's sha256; then the header.
    - :meth:`scan`: chosen canonical columns only (pandas ``usecols``), typed
      as in the chunk tables, for the file-level rules (duplicates, totals).
    - :meth:`tables`: every chunk as an :class:`IngestedTable`; the bytes it
      parses are hashed and must be pass 0's (a file rewritten while it was
      being loaded is refused rather than half-read).

    The file is opened once, without following a symlink (as read_table does),
    and every pass re-reads that same open file.
    """

    def __init__(self, path: Path, kind: str, chunk_rows: int | None = None) -> None:
        self.path, self.kind = Path(path), kind
        self.chunk_rows = chunk_rows or 0  # set from the header's width below unless given
        specs(kind)  # unknown kind -> ValueError early
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            raise IngestError(
                f"{self.path.name}: 无法读取文件：{exc.strerror}", path=self.path, rule_id="ING-002"
            ) from exc
        self._fh = os.fdopen(fd, "rb")
        try:
            self.encoding, self.sha256 = self._detect()
            self.columns, self.headers = self._header()
        except BaseException:
            self.close()
            raise
        self._unnamed = [i for i, c in enumerate(self.columns) if c.startswith("Unnamed:")]
        self._filled: set[int] = set()  # unnamed columns holding a cell somewhere (kept, as _tidy keeps them)
        self._scanned = False
        self.records = 0  # records of the file (blank ones included), known after a whole scan

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> CsvStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- pass 0 and the header

    def _detect(self) -> tuple[str, str]:
        """(encoding, sha256): decode_csv_bytes' choice, made without holding the file."""
        fh = self._fh
        fh.seek(0)
        bom = fh.read(3) == _BOM
        for enc in ENCODINGS:
            if enc == "utf-8-sig" and not bom:
                continue
            fh.seek(0)
            digest = hashlib.sha256()
            decoder = codecs.getincrementaldecoder(enc)(errors="strict")
            nul = filled = False
            try:
                while True:
                    block = fh.read(_BLOCK)
                    digest.update(block)
                    text = decoder.decode(block, final=not block)
                    nul = nul or "\x00" in text
                    filled = filled or bool(text.strip())
                    if not block:
                        break
            except UnicodeDecodeError:
                continue
            if nul:
                break  # as decode_csv_bytes: a decodable text with NUL is binary
            if not filled:
                raise IngestError(f"{self.path.name}: 文件为空，没有表头", path=self.path, rule_id="ING-003")
            return enc, digest.hexdigest()
        raise IngestError(
            f"{self.path.name}: 编码无法识别（应为 UTF-8 或 GBK/GB18030 编码的 CSV）", path=self.path, rule_id="ING-001"
        )

    def _header(self) -> tuple[list[str], dict[str, HeaderMatch]]:
        """pandas' column names, and the canonical columns they match.

        A whole-file read reports a malformed row (ING-002) before the header
        (ING-003) and before surplus leading fields: a header problem found
        here is raised only after a parse of the whole file found none.
        """
        self._fh.seek(0)
        try:
            first = pd.read_csv(self._fh, nrows=1, **self._read_args())
        except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
            raise _format_error(exc, self.path) from exc
        columns = [str(c) for c in first.columns]
        self.chunk_rows = self.chunk_rows or stream_chunk_rows(len(columns))
        problem: IngestError | None = None
        headers: dict[str, HeaderMatch] = {}
        if not isinstance(first.index, pd.RangeIndex):
            problem = _surplus_fields(self.path)
        else:
            try:
                # Unnamed columns match no spec: leaving them out changes nothing.
                headers = match_headers(self.kind, [c.strip() for c in columns if not c.startswith("Unnamed:")])
            except HeaderError as exc:
                problem = IngestError(f"{self.path.name}: {exc}", path=self.path, rule_id="ING-003")
        if problem is not None:
            for _ in self._frames(usecols=None):
                pass
            raise problem
        return columns, headers

    def _read_args(self) -> dict[str, Any]:
        return {
            "dtype": str,
            "keep_default_na": False,
            "na_filter": False,
            "skip_blank_lines": False,
            "encoding": self.encoding,
        }

    def _frames(self, usecols: list[int] | None, digest: Any = None) -> Iterator[pd.DataFrame]:
        """pandas' all-text chunks of the file, read from its start."""
        self._fh.seek(0)
        source: Any = io.BufferedReader(_Hashing(self._fh, digest), _BLOCK) if digest is not None else self._fh
        try:
            with pd.read_csv(source, chunksize=self.chunk_rows, usecols=usecols, **self._read_args()) as reader:
                for frame in reader:
                    if not isinstance(frame.index, pd.RangeIndex):
                        raise _surplus_fields(self.path)
                    yield frame
                    del frame  # not alive while pandas reads the next chunk
        except IngestError:
            raise
        except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
            raise _format_error(exc, self.path) from exc

    # -- pass 1

    def scan(self, columns: Sequence[str]) -> Iterator[pd.DataFrame]:
        """The canonical ``columns`` of every record, chunk by chunk, in file
        order, typed as in :meth:`tables`, with ``row``; blank records are NOT
        dropped here (they are in :meth:`tables`), so a consumer must treat
        them as what they are: empty keys, zero amounts, no dates.

        Only these columns are converted (pandas ``usecols``); a row with too
        many fields is not noticed here (pandas tolerates it under usecols),
        :meth:`tables` refuses it as a whole-file read does.
        """
        wanted = [s for s in specs(self.kind) if s.column in set(columns)]
        where = {c.strip(): i for i, c in reversed(list(enumerate(self.columns)))}
        positions = sorted(
            {0, *self._unnamed, *(where[self.headers[s.column].source] for s in wanted if s.column in self.headers)}
        )
        offset = 0
        for frame in self._frames(usecols=positions):
            frame.columns = [c.strip() for c in frame.columns]
            frame.index = pd.RangeIndex(2 + offset, 2 + offset + len(frame))
            offset += len(frame)
            for i in self._unnamed:
                if i not in self._filled and frame[self.columns[i].strip()].astype("str").str.strip().ne("").any():
                    self._filled.add(i)
            cols: dict[str, pd.Series] = {"row": pd.Series(frame.index.to_numpy(dtype="int64"), index=frame.index)}
            masks: dict[str, np.ndarray] = {}
            for spec in wanted:
                _typed_column(frame, spec, self.headers.get(spec.column), cols, masks, {}, {})
            chunk = pd.DataFrame(cols, index=frame.index)
            del frame, cols, masks
            yield chunk
            del chunk
        self.records, self._scanned = offset, True

    # -- pass 2

    def tables(self) -> Iterator[IngestedTable]:
        """Every chunk as an IngestedTable (``row``: the file's row numbers).

        Raises IngestError where read_table would (a malformed row: ING-002),
        and at the end if the bytes parsed are not the bytes of pass 0.
        """
        if self._unnamed and not self._scanned:
            for _ in self.scan(()):  # which Unnamed columns hold anything (_tidy keeps those)
                pass
        keep = [i for i in range(len(self.columns)) if i not in self._unnamed or i in self._filled]
        names = [self.columns[i].strip() for i in keep]
        digest = hashlib.sha256()
        offset = chunks = 0
        for frame in self._frames(usecols=None, digest=digest):
            raw = frame if len(keep) == len(self.columns) else frame.iloc[:, keep]
            del frame
            raw.columns = names
            raw.index = pd.RangeIndex(2 + offset, 2 + offset + len(raw))
            offset += len(raw)
            table = IngestedTable(
                self.path, self.kind, self.sha256, self.encoding, *_typed_table(raw, self.kind, self.headers)
            )
            del raw
            chunks += 1
            yield table
            del table  # one chunk alive at a time
        if not chunks:  # no chunk at all: one empty table, as read_table gives
            raw = pd.DataFrame({n: pd.Series([], dtype="str") for n in names}, index=pd.RangeIndex(2, 2))
            yield IngestedTable(
                self.path, self.kind, self.sha256, self.encoding, *_typed_table(raw, self.kind, self.headers)
            )
        if digest.hexdigest() != self.sha256:
            raise changed_while_read(self.path)


def changed_while_read(path: Path) -> IngestError:
    """A file whose bytes differ between two reads of one load (still being written)."""
    return IngestError(
        f"{path.name}: 文件在读取过程中被改动（前后两次读取的内容不同），请待文件写完后重新提交",
        path=path,
        rule_id="ING-002",
    )
