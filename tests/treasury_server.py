"""A real HTTP server speaking the treasury export contract (docs/treasury-export.md), for tests.

``http.server`` in a thread on a free loopback port. ``records`` holds what
it serves per (kind, fund, month); ``fault`` (a function of the request
returning ``(status, content_type, body)`` or None) breaks it on purpose.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

Reply = tuple[int, str, bytes]


@dataclass
class Request:
    path: str
    query: dict[str, str]
    headers: dict[str, str]


@dataclass
class TreasuryServer:
    token: str | None = None  # when set, requests without "Bearer <token>" get 401
    records: dict[tuple[str, str, str], list[dict[str, Any]]] = field(default_factory=dict)
    fault: Callable[[Request], Reply | None] | None = None
    requests: list[Request] = field(default_factory=list)

    def start(self) -> TreasuryServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                parts = urlsplit(self.path)
                req = Request(
                    parts.path,
                    {k: v[0] for k, v in parse_qs(parts.query).items()},
                    {k: v for k, v in self.headers.items()},
                )
                server.requests.append(req)
                status, ctype, body = server.reply(req)
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:  # quiet
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/treasury/v1"

    def reply(self, req: Request) -> Reply:
        if self.fault is not None:
            broken = self.fault(req)
            if broken is not None:
                return broken
        if self.token and req.headers.get("Authorization") != f"Bearer {self.token}":
            return 401, "application/json", b'{"error": "unauthorized"}'
        kind = req.path.rsplit("/", 1)[-1]
        fund, month = req.query.get("fund_code", ""), req.query.get("month", "")
        page, size = int(req.query.get("page", "1")), int(req.query.get("page_size", "500"))
        rows = self.records.get((kind, fund, month), [])
        pages = max(1, -(-len(rows) // size))
        body = {
            "fund_code": fund,
            "month": month,
            "page": page,
            "pages": pages,
            "total": len(rows),
            "records": rows[(page - 1) * size : page * size],
        }
        return 200, "application/json; charset=utf-8", dumps(body)


def dumps(body: Any) -> bytes:
    """JSON with a Decimal as the number it is (``0.10``), as a treasury export writes amounts."""
    text = json.dumps(body, ensure_ascii=False, default=lambda d: f"\0{d}\0")
    return re.sub(r'"\\u0000([-0-9.E+]+)\\u0000"', r"\1", text).encode("utf-8")


def payment(voucher: str, amount: Any, day: str, **extra: Any) -> dict[str, Any]:
    """A payments record as the treasury export names its fields."""
    return {
        "voucher_no": voucher,
        "unit": extra.pop("unit", "江门市市场监督管理局"),
        "doc_no": extra.pop("doc_no", "江财工〔2021〕12号"),
        "amount": amount,
        "pay_date": day,
        "kind": extra.pop("kind", "支付"),
        **extra,
    }
