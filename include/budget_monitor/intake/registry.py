"""The table of source kinds: fund.yaml ``source.kind`` -> how the source is built.

A row per kind; its settings (the rest of fund.yaml's ``source``) are the
matching class of ``config.SOURCE_SETTINGS``. :func:`source_for` picks a
fund's source, :func:`pull_funds` pulls many funds' month, one fund's failure
never stopping the others.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from budget_monitor.config import FilesSourceSettings, FundConfig, FundConfigError, load_fund_config

from . import files, sql, treasury
from .base import Pulled, Resolver, Source, SourceError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceKind:
    name: str  # fund.yaml source.kind
    label_zh: str  # for messages
    build: Callable[[Any, Resolver | None], Source]  # (settings, resolver) -> Source


SOURCES: dict[str, SourceKind] = {
    s.name: s
    for s in (
        SourceKind("files", "资金目录中报送的文件", files.FileDrop.from_settings),
        SourceKind("sql", "数据库", sql.SqlSource.from_settings),
        SourceKind("http", treasury.LABEL, treasury.TreasurySource.from_settings),
    )
}


def source_for(cfg: FundConfig, resolve: Resolver | None = None, default: Any = None) -> Source:
    """The fund's source: fund.yaml ``source``, else ``default`` (settings of
    the deployment, e.g. the DAG's SQL source connection), else the file drop.
    A source that cannot be set up (no URL, no such connection) raises
    SourceError naming the fund."""
    settings = cfg.source or default or FilesSourceSettings(kind="files")
    try:
        return SOURCES[settings.kind].build(settings, resolve)
    except SourceError as exc:
        raise SourceError(f"{cfg.code}：{exc}", fund_code=cfg.code, source=settings.kind) from None


@dataclass
class FundPull:
    """One fund's part of :func:`pull_funds`: what it pulled, or why not."""

    fund_dir: Path
    code: str  # the fund code, or the directory name when fund.yaml could not be read
    pulled: Pulled | None = None
    error: BaseException | None = None


def pull_funds(
    fund_dirs: Sequence[Path], month: str, resolve: Resolver | None = None, default: Any = None
) -> list[FundPull]:
    """Pull the month of each fund from its source, in order.

    A fund whose fund.yaml cannot be read is passed over without an error:
    its load reports the broken fund.yaml to the office. Any other failure is
    kept in its ``error`` and the next fund is pulled.
    """
    out: list[FundPull] = []
    for d in map(Path, fund_dirs):
        try:
            cfg = load_fund_config(d)
        except FundConfigError:
            out.append(FundPull(d, d.name))
            continue
        one = FundPull(d, cfg.code)
        try:
            one.pulled = source_for(cfg, resolve, default).pull(cfg.code, month, d)
            log.info("%s", one.pulled.summary())
        except Exception as exc:  # noqa: BLE001 - one fund's failure must not stop the others
            one.error = exc
        out.append(one)
    return out
