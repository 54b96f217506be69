"""File names as they enter one-line messages and the file system.

A file name is chosen by whoever drops the file, so it can hold a newline
(splitting a one-line reason in two), a tab, other control characters, or
Unicode bidi controls that reorder what a reader sees (U+202E makes
``exe.csv`` read backwards). :func:`safe_name` escapes those visibly, the way
Python writes them in a literal (``\\n``, ``\\t``, ``\\u202e``), and leaves
everything else (Chinese, spaces, punctuation) as written.

Created names must also fit NAME_MAX (255 bytes on ext4/xfs/tmpfs): a legal
Chinese name of 85 characters is 255 bytes of UTF-8 already, so a prefix
(timestamp, sha256) plus a suffix (``.report.json.tmp``) overflows it.
:func:`fit_name` cuts the stem by bytes at a character boundary and keeps
the extension.
"""

from __future__ import annotations

import re

NAME_MAX = 255  # bytes per path component (ext4, xfs, btrfs, tmpfs)

# C0 and C1 controls and DEL; bidi embeddings/overrides (U+202A-U+202E),
# isolates (U+2066-U+2069), marks (U+200E/F, U+061C); line/paragraph
# separators (U+2028/9), which some viewers break lines at; the BOM/ZWNBSP.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]")
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(m: re.Match[str]) -> str:
    ch = m.group(0)
    if ch in _SHORT:
        return _SHORT[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe_name(text: str) -> str:
    """``text`` with control and bidi characters escaped (``a\\nb``, ``\\u202e``).

    Printable text, Chinese included, is returned unchanged, so an ordinary
    name reads exactly as the finance office wrote it. A backslash is not
    escaped: names are shown, never parsed back.
    """
    return _UNSAFE.sub(_escape, str(text))


def is_safe_name(text: str) -> bool:
    return _UNSAFE.search(str(text)) is None


def fit_name(name: str, max_bytes: int) -> str:
    """``name`` cut to at most ``max_bytes`` bytes of UTF-8, keeping its extension.

    The stem loses its tail at a character boundary (never half a character);
    the extension (``.csv``, ``.xlsx``) stays so the file still opens with the
    right program. An extension longer than a third of the budget is treated
    as part of the stem.
    """
    if max_bytes < 1:
        raise ValueError("max_bytes must be positive")
    if len(name.encode("utf-8")) <= max_bytes:
        return name
    dot = name.rfind(".")
    ext = name[dot:] if dot > 0 else ""
    if len(ext.encode("utf-8")) * 3 > max_bytes:
        ext = ""
    stem = name[: len(name) - len(ext)] if ext else name
    room = max_bytes - len(ext.encode("utf-8"))
    cut = stem.encode("utf-8")[:room].decode("utf-8", errors="ignore")
    return cut + ext
