"""The department's contacts: who answers for each budget unit (``contacts.csv``).

One file at the inbox root, beside the fund directories, kept once for the
whole department (a province has hundreds of units and thousands of funds:
not in every fund.yaml). One row per contact; a unit may have several:

    预算单位,联系人,电子邮箱,账号
    台山市市场监督管理局,李明,liming@scjgj.taishan.example.cn,taishan

- 预算单位 (``unit``): the unit exactly as the budget file writes it.
- 电子邮箱 (``email``): where the unit's alerts go (To; the fund's finance
  office, fund.yaml ``recipients``, in Cc).
- 联系人 (``name``): optional, for people reading the dashboard.
- 账号 (``account``): optional, the Airflow user who answers the unit's
  核实反馈 requests (plugins' ``settings.unit_users``).

A unit without a row falls back to the finance office (its alerts go to the
fund's ``recipients``; the dashboard says so). No file: every unit falls back.

UTF-8 (with or without BOM) or GB18030, as Excel saves it. A bad file is
refused whole with a Chinese reason naming file, row and column
(:class:`ContactsError`): routing alerts by half a file would send some of
them to the wrong people, once and for good.
"""

from __future__ import annotations

import csv
import io
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .names import is_safe_name, safe_name

__all__ = ["CONTACTS_FILE", "Contact", "Contacts", "ContactsError", "accounts", "load", "for_fund_dir"]

CONTACTS_FILE = "contacts.csv"
# column -> accepted headers (the Chinese one first: what the finance office writes).
COLUMNS: dict[str, tuple[str, ...]] = {
    "unit": ("预算单位", "单位", "unit"),
    "name": ("联系人", "姓名", "name"),
    "email": ("电子邮箱", "邮箱", "email"),
    "account": ("账号", "登录账号", "account"),
}
REQUIRED = ("unit", "email")
# One plain addr-spec: no blank or control (a CR/LF would start a header), no
# separator or quote/comment/escape character of an address list (a quote or a
# parenthesis makes the To header parse as other addresses than written).
_ADDR = r'[^@\s,;<>"()\[\]\\:\x00-\x1f\x7f-\x9f]+'
_EMAIL = re.compile(rf"{_ADDR}@{_ADDR}\.{_ADDR}")
# An Airflow user name as BUDGET_MONITOR_USERS lists it ("name:role,..."): no
# separator of that list, no blank.
_ACCOUNT = re.compile(r"^[^\s,:]{1,64}$")


class ContactsError(ValueError):
    """contacts.csv is invalid; the message is for the finance office."""


@dataclass(frozen=True)
class Contact:
    unit: str
    email: str
    name: str = ""
    account: str = ""


@dataclass(frozen=True)
class Contacts:
    """The department's contacts by unit (empty: every unit falls back to the finance office)."""

    by_unit: Mapping[str, tuple[Contact, ...]] = field(default_factory=dict)
    path: Path | None = None

    def of(self, unit: str) -> tuple[Contact, ...]:
        return self.by_unit.get(unit, ())

    def emails(self, unit: str) -> tuple[str, ...]:
        """The unit's addresses, in file order; () when it has no contact."""
        return tuple(c.email for c in self.of(unit))

    def accounts(self, unit: str) -> list[str]:
        """The Airflow users who answer for the unit, in file order, each once."""
        return list(dict.fromkeys(c.account for c in self.of(unit) if c.account))

    def has(self, unit: str) -> bool:
        return bool(self.of(unit))


_cache: dict[Path, tuple[tuple[int, int], Contacts]] = {}
_lock = threading.Lock()


def load(root: str | Path) -> Contacts:
    """The contacts file at the inbox ``root`` (read again only when it changed).

    Raises ContactsError for a bad file; no file gives empty Contacts."""
    path = Path(root) / CONTACTS_FILE
    if path.is_symlink():
        # As fund.yaml: an error message must never quote a file from elsewhere.
        raise ContactsError(f"{path}: {CONTACTS_FILE} 是符号链接，已拒绝读取（请放入文件本身）")
    try:
        st = path.stat()
    except FileNotFoundError:
        return Contacts()
    stamp = (st.st_mtime_ns, st.st_size)
    with _lock:
        known = _cache.get(path)
    if known is not None and known[0] == stamp:
        return known[1]
    contacts = _parse(path, path.read_bytes())
    with _lock:
        _cache[path] = (stamp, contacts)
    return contacts


def for_fund_dir(fund_dir: str | Path) -> Contacts:
    """The contacts of the inbox a fund directory sits in (its parent)."""
    return load(Path(fund_dir).resolve().parent)


def accounts(root: str | Path, unit: str) -> list[str]:
    """Airflow user names who answer for ``unit`` (the plugins' ``settings.unit_users``)."""
    return load(root).accounts(unit)


def _decode(path: Path, raw: bytes) -> str:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise ContactsError(f"{path}: 无法识别文件编码（请另存为 UTF-8 或 GBK 编码的 CSV）")


def _header_map(path: Path, header: list[str]) -> dict[str, int]:
    where: dict[str, int] = {}
    for i, text in enumerate(header):
        name = text.strip()
        for col, aliases in COLUMNS.items():
            if name in aliases or name.lower() in aliases:
                if col in where:
                    raise ContactsError(f"{path}: 第1行（表头）列“{safe_name(name)}”重复")
                where[col] = i
    missing = [COLUMNS[c][0] for c in REQUIRED if c not in where]
    if missing:
        raise ContactsError(
            f"{path}: 第1行（表头）缺少列“{'”“'.join(missing)}”"
            f"（表头应为：{'，'.join(aliases[0] for aliases in COLUMNS.values())}）"
        )
    return where


def _parse(path: Path, raw: bytes) -> Contacts:
    rows = list(csv.reader(io.StringIO(_decode(path, raw), newline="")))
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise ContactsError(f"{path}: 文件为空，至少需要表头（{'，'.join(a[0] for a in COLUMNS.values())}）")
    where = _header_map(path, rows[0])
    by_unit: dict[str, list[Contact]] = {}
    seen: dict[tuple[str, str], int] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue  # blank lines are harmless

        def cell(col: str, row: list[str] = row) -> str:
            i = where.get(col)
            return row[i].strip() if i is not None and i < len(row) else ""

        unit, email, account = cell("unit"), cell("email"), cell("account")
        if not unit:
            raise ContactsError(f"{path}: 第{line}行 列“预算单位”：不能为空")
        if not (_EMAIL.fullmatch(email) and is_safe_name(email)):  # is_safe_name: bidi controls
            shown = f"“{safe_name(email)}”" if email else "空白"
            raise ContactsError(f"{path}: 第{line}行 列“电子邮箱”：{shown}不是有效的电子邮件地址")
        if account and not _ACCOUNT.match(account):
            raise ContactsError(
                f"{path}: 第{line}行 列“账号”：“{safe_name(account)}”无效（不能含空格、逗号或冒号，最长 64 个字符）"
            )
        key = (unit, email.lower())
        if key in seen:
            raise ContactsError(f"{path}: 第{line}行：{safe_name(unit)} 的邮箱 {email} 与第{seen[key]}行重复")
        seen[key] = line
        by_unit.setdefault(unit, []).append(Contact(unit=unit, email=email, name=cell("name"), account=account))
    return Contacts({u: tuple(cs) for u, cs in by_unit.items()}, path)
