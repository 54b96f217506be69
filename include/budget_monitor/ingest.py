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

import hashlib
import io
import os
import re
import zipfile
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

import numpy as np
import pandas as pd

from .dates import parse_dates, parse_months
from .money import parse_money
from .tables import HeaderError, HeaderMatch, match_headers, specs

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
    raise IngestError(f"{path.name}: 编码无法识别（应为 UTF-8 或 GBK/GB18030 编码的 CSV）", path=path, rule_id="ING-001")


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
        m = _FIELDS_RE.search(str(exc))
        detail = f"第{m.group(2)}行有 {m.group(3)} 个字段，表头只有 {m.group(1)} 列" if m else str(exc)
        raise IngestError(f"{path.name}: CSV 格式错误：{detail}", path=path, rule_id="ING-002") from exc
    if not isinstance(frame.index, pd.RangeIndex):
        # pandas turns surplus leading fields into an index: the data rows have
        # more fields than the header (e.g. an unquoted "1,234.50").
        raise IngestError(
            f"{path.name}: CSV 格式错误：数据行的字段比表头多（金额中的千分位逗号是否未加引号？）",
            path=path,
            rule_id="ING-002",
        )
    return frame, enc


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
                path=path, rule_id="ING-004")
    if total > XLSX_MAX_UNCOMPRESSED:
        raise IngestError(
            f"{path.name}: XLSX 文件解压后共 {total / (1 << 20):.0f} MiB，超过上限 "
            f"{XLSX_MAX_UNCOMPRESSED >> 20} MiB，请拆分或另存为 CSV", path=path, rule_id="ING-004")
    sheets = sorted(n for n in zf.namelist() if n.startswith("xl/worksheets/sheet") and n.endswith(".xml"))
    if sheets:
        with zf.open(sheets[0]) as fh:
            m = _DIMENSION_RE.search(fh.read(4096))
        if m and m.group(2):
            cells = int(m.group(3)) * _column_number(m.group(2).decode())
            if cells > XLSX_MAX_CELLS:
                raise IngestError(
                    f"{path.name}: XLSX 工作表声明了 {cells} 个单元格，超过上限 {XLSX_MAX_CELLS}，请拆分或另存为 CSV",
                    path=path, rule_id="ING-004")


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
    directory was listed (sources.fund_files never returns one)."""
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


def _typed(
    raw: pd.DataFrame, kind: str, headers: dict[str, HeaderMatch]
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]:
    cols: dict[str, pd.Series] = {"row": pd.Series(raw.index.to_numpy(dtype="int64"), index=raw.index)}
    empty: dict[str, np.ndarray] = {}
    invalid: dict[str, np.ndarray] = {}
    out_of_range: dict[str, np.ndarray] = {}
    n = len(raw)
    for spec in specs(kind):
        match = headers.get(spec.column)
        source = raw[match.source] if match else pd.Series([""] * n, index=raw.index, dtype="str")
        if spec.type in ("money", "date"):
            # These parsers trim in numpy themselves.
            res = parse_money(source, match.scale if match else 1) if spec.type == "money" else parse_dates(source)
            cols[spec.column] = res.fen if spec.type == "money" else res.values
            empty[spec.column] = res.empty.to_numpy(dtype=bool)
            invalid[spec.column] = res.invalid.to_numpy(dtype=bool)
            if spec.type == "money":
                out_of_range[spec.column] = res.out_of_range.to_numpy(dtype=bool)
            continue
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
    if kind == "payments":
        # 业务类型 is optional: absent or empty means an ordinary payment.
        cols["kind"] = cols["kind"].mask(empty["kind"], "支付")
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
