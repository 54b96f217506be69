"""Money text → integer fen, exactly (no float anywhere).

Accepted (after trimming): ``1234.5``, ``1,234.50``, ``1234.50元``,
``￥1,234.50`` / ``¥1234.5`` / ``RMB``, full-width digits ``１２３４．５０``,
a sign ``-50.00`` / ``+50``, and accounting negatives ``(50.00)`` /
``（50.00）``. With a 万元 header (``scale=10000``) ``37.5`` is 375000.00 元;
a value with more than 2 decimals *after* scaling is an error (1.234567 万元
is 12345.67 元, fine; 0.0000001 万元 is not a whole fen). Chinese numerals
(壹仟元) and anything else are errors: the fen is null and the caller keeps the
raw text for the message.

Thousands separators must group the integer digits by three (``1,234,567.89``);
a misplaced comma (``1,23,4``, ``12,34``, ``1234,567``) is an error rather than
a guess, since it usually means a mistyped or truncated amount.

Magnitude: a single amount must be under 1 万亿元 (``MAX_ABS_FEN``). A
well-formed amount at or above that is not "unreadable" but out of range
(``MoneyParse.out_of_range``, its own rule), and its fen is null like an
unreadable one. The bound is far above any real special fund and keeps every
per-file and per-fund sum of amounts that passed validation exact in int64
(the over-budget check itself is computed with Python ints: validate.py).

Parsing is vectorised over a pandas Series; a fast path handles the usual
export where every value is plain ``\\d+(\\.\\d{1,2})?``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

# Full-width digits/punctuation → ASCII; currency marks and grouping → removed.
_FULLWIDTH = {ord(c): ord(c) - 0xFEE0 for c in "０１２３４５６７８９．，－＋（）"}
_FULLWIDTH.update({0x3000: 0x20, ord("−"): ord("-")})  # ideographic space, minus sign
_STRIP_RE = r"[\s￥¥元]|RMB|CNY"
# Commas only as thousands separators in the integer part, groups of three.
_GENERAL_RE = re.compile(
    r"^(?P<paren>\()?(?P<sign>[-+])?(?P<int>\d{1,3}(?:,\d{3})+|\d*)(?:\.(?P<frac>\d*))?(?(paren)\))$"
)
# Integer digits + scaled fraction digits stay <= 18, so fen fits int64.
_MAX_DIGITS = 18
_SCALE_DIGITS = {1: 0, 10_000: 4}
# Largest accepted single amount: 999,999,999,999.99 元 (just under 1 万亿元).
MAX_ABS_FEN = 10**14 - 1


class MoneyError(ValueError):
    """A single money text could not be read (scalar API)."""


@dataclass(frozen=True)
class MoneyParse:
    fen: pd.Series  # Int64, null where empty, invalid or out of range
    empty: pd.Series  # bool: the cell was empty (after trimming)
    invalid: pd.Series  # bool: non-empty but not a valid amount
    # bool: a well-formed amount whose magnitude is MAX_ABS_FEN or more (not invalid)
    out_of_range: pd.Series | None = None

    @property
    def ok(self) -> bool:
        return not bool(self.invalid.any())


def parse_money(values: pd.Series, scale: int = 1) -> MoneyParse:
    """Parse a Series of money text into integer fen (``Int64``).

    ``scale`` is 1 for 元 and 10000 for 万元 headers. Cells the numpy fast
    path cannot read (currency marks, full-width digits, Chinese numerals,
    more decimals) go through the general regex path, row subset only.
    """
    if scale not in _SCALE_DIGITS:
        raise ValueError(f"unsupported money scale {scale}")
    index = values.index
    obj = values.to_numpy(dtype=object, na_value="")
    u = np.strings.strip(np.asarray(obj, dtype="U")) if len(obj) else np.asarray(obj, dtype="U1")
    empty = np.strings.str_len(u) == 0
    fen, fast_ok = _fast(u, scale)
    todo = ~fast_ok & ~empty
    invalid = np.zeros(len(u), dtype=bool)
    too_big = np.zeros(len(u), dtype=bool)
    if todo.any():
        sub = pd.Series(u[todo], dtype="str")
        g_fen, g_invalid, g_big = _general(sub, scale)
        fen[todo] = g_fen
        invalid[todo] = g_invalid
        too_big[todo] = g_big
    too_big |= ~invalid & ~empty & (np.abs(fen) > MAX_ABS_FEN)
    result = pd.Series(fen, index=index, dtype="Int64").mask(empty | invalid | too_big)
    return MoneyParse(
        result, pd.Series(empty, index=index), pd.Series(invalid, index=index), pd.Series(too_big, index=index)
    )


def _fast(u: np.ndarray, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """Plain ASCII ``-?digits[.d{1,2}]`` with optional thousands commas,
    all in numpy string ufuncs. Returns (fen, ok); fen is 0 where not ok."""
    n = len(u)
    fen = np.zeros(n, dtype="int64")
    if n == 0:
        return fen, np.zeros(0, dtype=bool)
    if u.dtype.itemsize and (u.view(np.uint32) >= 128).any():
        ascii_ok = np.array([s.isascii() for s in u]) if n < 1000 else _ascii_rows(u)
    else:
        ascii_ok = np.ones(n, dtype=bool)
    # Skip the string passes a typical export does not need (no commas, few negatives).
    has_comma = np.strings.find(u, ",") >= 0
    grouped = np.ones(n, dtype=bool)
    if has_comma.any():
        body = np.strings.replace(u, ",", "")
        grouped[has_comma] = _grouped_by_three(u[has_comma])
    else:
        body = u
    neg = np.strings.startswith(body, "-")
    if neg.any():
        body = np.where(neg, np.strings.slice(body, 1, None), body)
    dot = np.strings.find(body, ".")
    length = np.strings.str_len(body)
    frac_len = np.where(dot >= 0, length - dot - 1, 0)
    digits = np.strings.replace(body, ".", "", 1)
    int_len = np.where(dot >= 0, dot, length)
    extra = _SCALE_DIGITS[scale] + 2
    ok = (
        ascii_ok
        & grouped
        & (int_len >= 1)
        & ((dot < 0) | ((frac_len >= 1) & (frac_len <= 2)))
        & (int_len + extra <= _MAX_DIGITS)
        & np.strings.isdigit(digits)
    )
    if ok.any():
        vals = np.where(ok, digits, "0").astype("int64")
        fen = vals * (10 ** np.where(ok, extra - frac_len, 0)).astype("int64")
        fen = np.where(neg, -fen, fen)
        fen[~ok] = 0
    return fen, ok


def _grouped_by_three(u: np.ndarray) -> np.ndarray:
    """For texts holding a comma: are the commas thousands separators, i.e.
    ``-?d{1,3}(,ddd)+`` before an optional ``.fraction`` (vectorised)?

    The integer part (between the sign and the dot, commas included) of n
    characters is well grouped iff n % 4 != 0 (a leading group of 1-3 digits),
    a comma stands at every n - 4k (k >= 1, 4k < n) and there is no other comma;
    the digits themselves are checked by the caller.
    """
    start = np.strings.startswith(u, "-").astype("int64")
    length = np.strings.str_len(u)
    dot = np.strings.find(u, ".")
    end = np.where(dot >= 0, dot, length)
    n = end - start
    commas = np.strings.count(u, ",")
    # 18 digits at most (see _MAX_DIGITS) need at most 5 separators.
    good = (n <= 23) & (n % 4 != 0) & (commas == (n - 1) // 4) & (np.strings.count(u, ",", start, end) == commas)
    for k in range(1, 6):
        pos = np.maximum(end - 4 * k, 0)
        need = good & (4 * k < n)
        if not need.any():
            break
        good &= ~need | (np.strings.find(u, ",", pos, pos + 1) == pos)
    return good


def _ascii_rows(u: np.ndarray) -> np.ndarray:
    width = u.dtype.itemsize // 4
    codes = u.view(np.uint32).reshape(len(u), width)
    return (codes < 128).all(axis=1)


def _general(s: pd.Series, scale: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Regex path for the rows the fast path refused: (fen, invalid, too_big);
    a well-formed amount with more integer digits than int64 fen can hold is
    too big, not invalid."""
    norm = s.str.translate(_FULLWIDTH).str.replace(_STRIP_RE, "", regex=True)
    m = norm.str.extract(_GENERAL_RE.pattern)
    int_part = m["int"].fillna("").str.replace(",", "", regex=False)
    frac = m["frac"].fillna("").str.rstrip("0")
    extra = _SCALE_DIGITS[scale] + 2  # fraction digits that still land on a whole fen
    matched = m["int"].notna() | m["frac"].notna()
    well_formed = (
        matched & ((int_part.str.len() > 0) | (m["frac"].fillna("").str.len() > 0)) & (frac.str.len() <= extra)
    ).to_numpy(dtype=bool)
    fits = (int_part.str.lstrip("0").str.len() <= _MAX_DIGITS - extra).to_numpy(dtype=bool)
    valid = well_formed & fits
    negative = (m["sign"].eq("-").fillna(False) | m["paren"].notna()).to_numpy(dtype=bool)
    ip = int_part.where(valid & (int_part != ""), "0")
    fp = frac.where(valid, "").str.ljust(extra, "0")
    fen = ip.astype("int64").to_numpy() * (10**extra) + fp.astype("int64").to_numpy()
    fen = np.where(negative, -fen, fen)
    fen[~valid] = 0
    return fen, ~well_formed, well_formed & ~fits


def parse_money_text(text: str, scale: int = 1) -> int:
    """One money text → fen; raise MoneyError (Chinese) when invalid or empty."""
    res = parse_money(pd.Series([text], dtype="str"), scale)
    if bool(res.empty.iloc[0]):
        raise MoneyError("金额为空")
    if bool(res.invalid.iloc[0]):
        raise MoneyError(f"金额无法识别：“{text}”")
    if bool(res.out_of_range.iloc[0]):
        raise MoneyError(f"金额超出可受理范围：“{text}”（单笔金额的绝对值应小于 1 万亿元）")
    return int(res.fen.iloc[0])
