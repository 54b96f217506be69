"""SMTP catch-all (aiosmtpd, :1025) with a JSON listing on :8025, in memory.

The JSON follows mailpit's API for the fields the compose test reads, so the
same test can read a real mailpit.
"""

from __future__ import annotations

import email
import email.policy
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller

MESSAGES: list[dict] = []
RAW: dict[str, bytes] = {}
LOCK = threading.Lock()


class Handler:
    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        mid = uuid.uuid4().hex
        attachments = [p.get_filename() for p in msg.walk() if p.get_filename()]
        with LOCK:
            RAW[mid] = envelope.content
            MESSAGES.append(
                {
                    "ID": mid,
                    "MessageID": str(msg.get("Message-ID", "")),
                    "Subject": str(msg.get("Subject", "")),
                    "From": {"Address": envelope.mail_from},
                    "To": [{"Address": a} for a in envelope.rcpt_tos],
                    "Attachments": len(attachments),
                    "AttachmentNames": attachments,
                }
            )
        return "250 Message accepted for delivery"


class Api(BaseHTTPRequestHandler):
    def _send(self, code: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802 - http.server's name
        if self.path == "/readyz":
            return self._send(200, b"ok", "text/plain")
        if self.path.startswith("/api/v1/messages"):
            with LOCK:
                listing = {"total": len(MESSAGES), "messages": list(reversed(MESSAGES))}
            return self._send(200, json.dumps(listing, ensure_ascii=False).encode())
        parts = self.path.strip("/").split("/")
        if len(parts) == 5 and parts[:3] == ["api", "v1", "message"] and parts[4] == "raw":
            with LOCK:
                raw = RAW.get(parts[3])
            if raw is not None:
                return self._send(200, raw, "message/rfc822")
        return self._send(404, b"not found", "text/plain")

    def log_message(self, fmt, *args):  # quiet: the healthcheck polls every 10 s
        pass


if __name__ == "__main__":
    smtp = Controller(Handler(), hostname="0.0.0.0", port=1025, server_hostname="mailpit")
    smtp.start()
    print("SMTP on :1025, HTTP on :8025", flush=True)
    ThreadingHTTPServer(("0.0.0.0", 8025), Api).serve_forever()
