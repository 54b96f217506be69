"""Money text → integer fen, exactly (no float anywhere).

Accepted (after trimming): ``1234.5``, ``1,234.50``, ``1234.50元``,
``￥1,234.50`` / ``¥1234.5`` / ``RMB``, full-width digits ``１２３４．５０``,
a sign ``-50.00`` / ``+50``, and accounting negatives ``(50.00)`` /
``（50.00）``. With a 万元 header (``scale=10000``) ``37.5`` is 375000.00 元;
a value with more than 2 decimals *after* scaling is an error (1.234567 万元
is 12345.67 元, fine; 0.0000001 万元 is not a whole fen). Chinese numerals
(壹仟元) and anything else are errors: the fen is null and the caller keeps the
raw text for the message.

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
_STRIP_RE = r"[\s,￥¥元]|RMB|CNY"
_FAST_RE = r"\d{1,16}(?:\.\d{1,2})?"
_GENERAL_RE = re.compile(r"^(?P<paren>\()?(?P<sign>[-+])?(?P<int>\d*)(?:\.(?P<frac>\d*))?(?(paren)\))$")
# Integer digits + scaled fraction digits stay <= 18, so fen fits int64.
_MAX_DIGITS = 18
_SCALE_DIGITS = {1: 0, 10_000: 4}


class MoneyError(ValueError):
    """A single money text could not be read (scalar API)."""


@dataclass(frozen=True)
class MoneyParse:
    fen: pd.Series  # Int64, null where empty or invalid
    empty: pd.Series  # bool: the cell was empty (after trimming)
    invalid: pd.Series  # bool: non-empty but not a valid amount

    @property
    def ok(self) -> bool:
        return not bool(self.invalid.any())


def parse_money(values: pd.Series, scale: int = 1) -> MoneyParse:
    """Parse a Series of money text into integer fen (``Int64``).

    ``scale`` is 1 for 元 and 10000 for 万元 headers.
    """
    if scale not in _SCALE_DIGITS:
        raise ValueError(f"unsupported money scale {scale}")
    s = values.astype("str").fillna("").str.strip() if len(values) else values.astype("str")
    empty = s == ""
    if scale == 1 and len(s) and bool((s.str.fullmatch(_FAST_RE) | empty).all()):
        return MoneyParse(_fast(s, empty), empty, pd.Series(False, index=s.index))
    return _general(s, empty, scale)


def _fast(s: pd.Series, empty: pd.Series) -> pd.Series:
    # Plain "123" / "123.4" / "123.45": split at the dot and pad the cents.
    parts = s.str.partition(".")
    cents = parts[2].str.ljust(2, "0")
    digits = (parts[0] + cents).where(~empty, "0")
    fen = pd.Series(digits.astype("int64").to_numpy(), index=s.index, dtype="Int64")
    return fen.mask(empty)


def _general(s: pd.Series, empty: pd.Series, scale: int) -> MoneyParse:
    norm = s.str.translate(_FULLWIDTH).str.replace(_STRIP_RE, "", regex=True)
    m = norm.str.extract(_GENERAL_RE.pattern)
    int_part = m["int"].fillna("")
    frac = m["frac"].fillna("").str.rstrip("0")
    extra = _SCALE_DIGITS[scale] + 2  # fraction digits that still land on a whole fen
    matched = m["int"].notna() | m["frac"].notna()
    valid = (
        ~empty
        & matched
        & ((int_part.str.len() > 0) | (m["frac"].fillna("").str.len() > 0))
        & (int_part.str.lstrip("0").str.len() <= _MAX_DIGITS - extra)
        & (frac.str.len() <= extra)
    )
    negative = m["sign"].eq("-").fillna(False) | m["paren"].notna()
    ip = int_part.where(valid & (int_part != ""), "0")
    fp = frac.where(valid, "").str.ljust(extra, "0")
    fen_np = ip.astype("int64").to_numpy() * (10**extra) + fp.astype("int64").to_numpy()
    fen_np = np.where(negative.to_numpy(dtype=bool), -fen_np, fen_np)
    fen = pd.Series(fen_np, index=s.index, dtype="Int64").mask(~valid.to_numpy(dtype=bool))
    invalid = (~empty & ~valid).astype(bool)
    return MoneyParse(fen, empty.astype(bool), invalid)


def parse_money_text(text: str, scale: int = 1) -> int:
    """One money text → fen; raise MoneyError (Chinese) when invalid or empty."""
    res = parse_money(pd.Series([text], dtype="str"), scale)
    if bool(res.empty.iloc[0]):
        raise MoneyError("金额为空")
    if bool(res.invalid.iloc[0]):
        raise MoneyError(f"金额无法识别：“{text}”")
    return int(res.fen.iloc[0])


def fen_to_yuan_text(fen: int) -> str:
    """Exact decimal string in 元: 12345 → '123.45', -5 → '-0.05'."""
    sign = "-" if fen < 0 else ""
    q, r = divmod(abs(int(fen)), 100)
    return f"{sign}{q}.{r:02d}"
