"""The Source interface: how a fund's month gets into its fund directory.

A source *pulls* one fund's month into the fund directory and from there the
file path is the only path: a pulled snapshot is validated, archived by
sha256 and loaded exactly like a file the finance office dropped, so a bad
value pulled from a database or an HTTP export is rejected, quarantined and
reported like any bad file. A pull is

- atomic: every file appears whole or not at all (hidden temp, renamed), and
  a pull that fails half-way leaves the fund directory as it was;
- idempotent: the same rows give the same bytes, so pulling twice changes
  nothing and the second load skips the file by its hash;
- reported: :class:`Pulled` says which files it wrote and how many rows.

Secrets (database passwords, tokens) never come from fund.yaml: a source is
given an :class:`Endpoint` resolved from an Airflow connection (the DAG) or
from environment variables named in fund.yaml (the CLI).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable


class SourceError(RuntimeError):
    """A source could not deliver the month (server down, refused, broken
    contract). The message is one Chinese line naming the fund and the source;
    nothing was written to the fund directory."""

    def __init__(self, message: str, *, fund_code: str, source: str) -> None:
        super().__init__(message)
        self.fund_code = fund_code
        self.source = source


@dataclass(frozen=True)
class Endpoint:
    """Where a source is and its secret, resolved outside fund.yaml."""

    url: str | None = None
    secret: str | None = field(default=None, repr=False)  # a token or the URL's password; never logged


# Airflow connection id -> Endpoint, or None when no such connection exists.
Resolver = Callable[[str], "Endpoint | None"]


@dataclass(frozen=True)
class Pulled:
    """What one pull did: the month's snapshot files (written now, or already
    there with the same bytes) and the rows per kind."""

    source: str
    fund_code: str
    month: str
    files: tuple[Path, ...] = ()
    rows: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        if not self.rows:
            return f"{self.fund_code} {self.month}: nothing pulled ({self.source})"
        counts = ", ".join(f"{k}={n}" for k, n in self.rows.items())
        return f"{self.fund_code} {self.month}: pulled {counts} from {self.source} into {len(self.files)} file(s)"


@runtime_checkable
class Source(Protocol):
    """Pulls one fund's month into its fund directory (see the module docstring)."""

    kind: str  # fund.yaml ``source.kind``

    def pull(self, fund_code: str, month: str, fund_dir: Path) -> Pulled: ...
