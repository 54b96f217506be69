"""The treasury payment system (国库集中支付系统) as a source: its HTTP/JSON export.

The contract (docs/treasury-export.md): ``GET <url>/<kind>?fund_code=&month=
&page=&page_size=`` answers one page of the fund's records of that month as
``{"fund_code", "month", "page", "pages", "total", "records": [...]}``, each
record named by the data contract's English aliases (voucher_no, unit,
doc_no, amount, pay_date, kind, econ_class, memo). Every page is fetched
before anything is written; the month's records then become the month's CSV
snapshot (snapshot.py), which the loader validates like a dropped file: a bad
amount or date is rejected, quarantined and reported to the finance office.

What the loader cannot see is checked here: the transport (timeouts, refused
connections), the status, and the envelope (JSON, the echoed fund, month and
page, the paging adding up, one object per record, scalar values). Any of
those raises :class:`SourceError` with one Chinese line, writes nothing to
the fund directory, and a body that broke the contract is kept in the fund's
quarantine with its reason for ops to look at.

httpx (already in the lock, through Airflow) does the HTTP: timeouts on
connect and read, streamed bodies (so a page over ``MAX_PAGE_BYTES`` is
refused without being held).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from budget_monitor.names import safe_name
from budget_monitor.periods import month_bounds
from budget_monitor.tables import specs

from .base import Pulled, Resolver, SourceError
from budget_monitor.kinds import data_kind
from .snapshot import write_snapshot

LABEL = "国库集中支付系统接口"
# A page larger than this is refused unread (a month of one fund is far smaller;
# a runaway export must not fill the worker's memory). Env override for ops.
MAX_PAGE_BYTES = int(os.environ.get("BUDGET_MONITOR_TREASURY_MAX_PAGE_BYTES") or 64 << 20)
# More pages than this is a paging loop, not a month of data.
MAX_PAGES = 10_000

# What a status means for the office's IT, by code (else by class below).
_STATUS_ZH = {
    400: "请求被拒绝（参数不符合接口约定）",
    401: "认证失败（令牌无效、过期或未配置）",
    403: "无权读取该资金的数据",
    404: "接口地址不存在",
    408: "服务器等待请求超时",
    429: "请求过于频繁，已被限流",
}
_STATUS_CLASS_ZH = {3: "接口返回了重定向（不跟随，请配置最终地址）", 4: "请求被拒绝", 5: "服务器内部错误"}


class _Broken(Exception):
    """The body broke the contract: ``reason`` is the Chinese detail."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class TreasurySource:
    url: str
    token: str | None = field(default=None, repr=False)
    kinds: tuple[str, ...] = ("payments",)
    page_size: int = 500
    timeout_s: float = 30.0
    kind: str = "http"

    @classmethod
    def from_settings(cls, settings: Any, resolve: Resolver | None = None) -> TreasurySource:
        """From fund.yaml's ``source`` (config.HttpSourceSettings): the URL from
        fund.yaml or else the Airflow connection ``conn_id``; the token from
        that connection's password or else the environment variable ``token_env``."""
        found = resolve(settings.conn_id) if resolve is not None else None
        url = settings.url or (found.url if found is not None else None)
        if not url:
            raise SourceError(
                f"{LABEL}未配置地址：请在 fund.yaml 的 source.url 或 Airflow 连接 {settings.conn_id} 中给出",
                fund_code="",
                source="http",
            )
        token = (found.secret if found is not None else None) or os.environ.get(settings.token_env) or None
        return cls(url, token, tuple(settings.kinds), settings.page_size, settings.timeout_s)

    def pull(self, fund_code: str, month: str, fund_dir: Path) -> Pulled:
        """Fetch every page of every kind, then write the month's snapshots."""
        import httpx

        month_bounds(month)  # a bad month fails before any request
        fetched: dict[str, list[dict[str, Any]]] = {}
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        with httpx.Client(timeout=httpx.Timeout(self.timeout_s), headers=headers, follow_redirects=False) as client:
            for kind in self.kinds:
                fetched[kind] = list(_Fetch(self, client, fund_code, month, kind, Path(fund_dir)).records())
        written: list[Path] = []
        counts: dict[str, int] = {}
        for kind, records in fetched.items():
            if not records:
                continue
            columns = _columns(kind, records)
            rows = sorted(records, key=lambda r: [_sort_text(r.get(c)) for c in columns])
            written.append(write_snapshot(Path(fund_dir), kind, fund_code, month, columns, rows))
            counts[kind] = len(records)
        return Pulled(self.kind, fund_code, month, tuple(written), counts)


@dataclass
class _Fetch:
    """The pages of one kind of one fund-month."""

    source: TreasurySource
    client: Any  # httpx.Client
    fund_code: str
    month: str
    kind: str
    fund_dir: Path

    def records(self) -> Iterator[dict[str, Any]]:
        page, pages, total, seen = 1, 1, None, 0
        while page <= pages:
            url = f"{self.source.url.rstrip('/')}/{data_kind(self.kind).stem}"
            params = {
                "fund_code": self.fund_code,
                "month": self.month,
                "page": page,
                "page_size": self.source.page_size,
            }
            data = self._get(url, params, page)
            try:
                body = _envelope(data, self.fund_code, self.month, page, self.source.page_size)
                if total is None:
                    pages, total = body["pages"], body["total"]
                elif (body["pages"], body["total"]) != (pages, total):
                    raise _Broken(
                        f"分页过程中总数发生变化（第1页为 {pages} 页 {total} 条，第{page}页为 "
                        f"{body['pages']} 页 {body['total']} 条），数据可能正在更新，请稍后重试"
                    )
                seen += len(body["records"])
                if page == pages and seen != total:
                    raise _Broken(f"各页记录合计 {seen} 条，与声明的总数 {total} 条不符")
            except _Broken as exc:
                raise self._broken(data, page, exc.reason) from None
            yield from body["records"]
            page += 1

    def _get(self, url: str, params: Mapping[str, Any], page: int) -> bytes:
        import httpx

        where = f"{LABEL} {_shown(url)}（{self.kind} 第{page}页）"
        try:
            with self.client.stream("GET", url, params=params) as resp:
                if resp.status_code != 200:
                    raise self._error(f"{where}返回 HTTP {resp.status_code}：{_status_text(resp.status_code)}")
                kind = resp.headers.get("content-type", "").split(";")[0].strip().lower()
                if kind != "application/json":
                    data = self._read(resp, where)
                    raise self._broken(data, page, f"返回的不是 JSON（Content-Type: {safe_name(kind) or '无'}）")
                return self._read(resp, where)
        except httpx.TimeoutException:
            raise self._error(f"{where}超时（超过 {self.source.timeout_s:g} 秒未响应）") from None
        except httpx.TransportError as exc:
            raise self._error(f"{where}连接失败（{type(exc).__name__}）") from None

    def _read(self, resp: Any, where: str) -> bytes:
        """The body, refused past MAX_PAGE_BYTES without reading the rest."""
        chunks, size = [], 0
        for chunk in resp.iter_bytes():
            size += len(chunk)
            if size > MAX_PAGE_BYTES:
                raise self._error(f"{where}单页超过 {MAX_PAGE_BYTES >> 20} MiB，拒绝读取（请减小 page_size）")
            chunks.append(chunk)
        return b"".join(chunks)

    def _error(self, text: str) -> SourceError:
        return SourceError(f"{self.fund_code} {self.month}：{text}", fund_code=self.fund_code, source="http")

    def _broken(self, data: bytes, page: int, reason: str) -> SourceError:
        """The body broke the contract: keep it in quarantine, say so."""
        from budget_monitor import quarantine

        name = f"http_{self.kind}_{self.month}_p{page}.json"
        text = f"{LABEL}返回的内容不符合接口约定：{reason}"
        try:
            kept = quarantine.quarantine_bytes(
                data,
                name,
                {"file": name, "kind": self.kind, "source": "http", "page": page, "reason": text},
                self.fund_dir / "quarantine",
            )
            where = f"；原始内容已存入隔离区 {kept.name}"
        except OSError as exc:  # the reason matters more than the copy
            where = f"；原始内容未能存入隔离区（{exc.strerror}）"
        return self._error(f"{text}（{self.kind} 第{page}页）{where}")


def _envelope(data: bytes, fund_code: str, month: str, page: int, page_size: int) -> dict[str, Any]:
    """The page's envelope, checked against the request; records as plain dicts of scalars."""
    try:
        # Decimal for every non-integer number: an amount is never a float.
        body = json.loads(data, parse_float=Decimal)
    except (ValueError, RecursionError) as exc:
        raise _Broken(f"不是有效的 JSON（{type(exc).__name__}）") from None
    if not isinstance(body, dict):
        raise _Broken("最外层应为 JSON 对象")
    for key, expected in (("fund_code", fund_code), ("month", month), ("page", page)):
        if body.get(key) != expected:
            raise _Broken(f"字段 {key} 应为 {expected!r}，实为 {safe_name(repr(body.get(key)))[:80]}")
    for key in ("pages", "total"):
        value = body.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise _Broken(f"字段 {key} 应为非负整数")
    if not 1 <= body["pages"] <= MAX_PAGES:
        raise _Broken(f"字段 pages 应在 1 到 {MAX_PAGES} 之间")
    records = body.get("records")
    if not isinstance(records, list):
        raise _Broken("缺少 records 列表")
    if len(records) > page_size:
        raise _Broken(f"本页 {len(records)} 条记录，超过请求的每页 {page_size} 条")
    for n, rec in enumerate(records, 1):
        if not isinstance(rec, dict):
            raise _Broken(f"第{n}条记录不是 JSON 对象")
        for key, value in rec.items():
            if isinstance(value, (dict, list, bool)):
                raise _Broken(f"第{n}条记录的字段 {safe_name(str(key))} 不是文本或数字")
    return body


def _columns(kind: str, records: list[dict[str, Any]]) -> list[str]:
    """The contract's columns present in any record (contract order), then the others as first seen.

    A required column no record has is left out: the loader then rejects the
    snapshot for the missing column, naming it, like a file without it.
    """
    present: dict[str, None] = {}
    for rec in records:
        present.update(dict.fromkeys(rec))
    contract = [s.alias for s in specs(kind) if s.alias in present]
    return contract + [c for c in present if c not in contract]


def _sort_text(value: object) -> str:
    # Rows in a fixed order whatever the server's: the same records, the same bytes.
    return "" if value is None else str(value)


def _status_text(status: int) -> str:
    return _STATUS_ZH.get(status) or _STATUS_CLASS_ZH.get(status // 100, "意外的响应")


def _shown(url: str) -> str:
    """The URL for a message: no user, password or query (they may carry a secret), escaped."""
    parts = urlsplit(url)
    host = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    return safe_name(urlunsplit((parts.scheme, host, parts.path, "", "")))
