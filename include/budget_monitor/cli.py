"""`budget-monitor`: the command line over the same functions the DAGs call.

    budget-monitor monthly <fund_dir> --month YYYY-MM [--db URL] [--no-send]
    budget-monitor year-end <fund_dir> --year YYYY --out <dir> [--db URL] [--no-send] [--draft]
    budget-monitor pull <fund_dir> --month YYYY-MM [--source-url URL]

`monthly` and `pull` pull the month from the fund's source first (fund.yaml
`source`, secrets from the environment; nothing for dropped files), or from
the SQL database ``--source-url`` names.
    budget-monitor data-docs <fund_dir> --out <dir>
    budget-monitor audit <fund_dir> --year YYYY --out <dir> [--db URL]

Exit codes (each with one Chinese line on stderr saying what to do):
  0  success
  1  unexpected internal error (traceback in the log file named on stderr)
  2  input rejected or not ready: a file was quarantined (the month was still
     closed for what landed and the 数据退回 notice sent), a bad fund.yaml or
     argument, or a year-end before December is closed
  3  infrastructure failure: database unreachable or lost, disk full,
     permission denied, report template error or timeout, the fund's data
     source unreachable or breaking its contract; nothing partial
     was written (traceback in the log file)
  4  done, but some mails are still unsent (they stay queued and go out with
     the next run)
  5  another run holds this fund; nothing was changed
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sys
from dataclasses import replace
from pathlib import Path

EXIT_OK, EXIT_BUG, EXIT_INPUT, EXIT_INFRA, EXIT_UNSENT, EXIT_BUSY = 0, 1, 2, 3, 4, 5


def _mailer_for(fund_dir: Path, send: bool):  # -> Mailer | None
    if not send:
        return None
    from budget_monitor.config import load_fund_config
    from budget_monitor.outbox import SmtpMailer

    cfg = load_fund_config(fund_dir).smtp
    host = os.environ.get("BUDGET_MONITOR_SMTP_HOST", cfg.host)
    port = int(os.environ.get("BUDGET_MONITOR_SMTP_PORT", cfg.port))
    return replace(SmtpMailer.from_config(cfg), host=host, port=port)


def _monthly(args: argparse.Namespace) -> int:
    from budget_monitor.pipeline import run_monthly

    fund_dir = Path(args.fund_dir)
    _pull_month(fund_dir, args.month, args.source_url)
    result = run_monthly(fund_dir, args.month, args.db, _mailer_for(fund_dir, not args.no_send))
    print(result.summary())
    return _unsent(result)


def _unsent(result) -> int:  # MonthlyResult | YearEndResult
    """Exit 4 with one line when mails are left in the outbox after the flush."""
    if not result.unsent:
        return EXIT_OK
    why = f"（{result.stopped}）" if result.stopped else ""
    print(
        f"邮件未全部发出：{result.unsent} 封仍在待发送队列{why}，将在下次运行时自动重试；"
        f"请检查邮件服务器设置（fund.yaml smtp）",
        file=sys.stderr,
    )
    return EXIT_UNSENT


def _year_end(args: argparse.Namespace) -> int:
    from budget_monitor.pipeline import run_year_end

    fund_dir = Path(args.fund_dir)
    send = not (args.no_send or args.draft)
    result = run_year_end(
        fund_dir,
        args.year,
        Path(args.out),
        args.db,
        _mailer_for(fund_dir, send),
        queue=not args.no_send,
        draft=args.draft,
    )
    print(("【草稿】" if args.draft else "") + result.summary())
    return _unsent(result)


def _pull_month(fund_dir: Path, month: str, source_url: str | None):  # -> intake.Pulled
    """Pull the month from ``--source-url`` (a SQL database) if given, else from
    the fund's own source (fund.yaml ``source``; secrets from the environment)."""
    from budget_monitor.config import load_fund_config
    from budget_monitor.intake.registry import source_for
    from budget_monitor.intake.sql import SqlSource

    cfg = load_fund_config(fund_dir)
    source = SqlSource(source_url) if source_url else source_for(cfg)
    return source.pull(cfg.code, month, fund_dir)


def _pull(args: argparse.Namespace) -> int:
    for p in _pull_month(Path(args.fund_dir), args.month, args.source_url).files:
        print(p)
    return 0


def _data_docs(args: argparse.Namespace) -> int:
    from budget_monitor.validate import build_data_docs

    print(build_data_docs(Path(args.out), fund_dir=Path(args.fund_dir)))
    return 0


def _audit(args: argparse.Namespace) -> int:
    from budget_monitor.audit import export_audit

    for path in export_audit(Path(args.fund_dir), args.year, Path(args.out), args.db):
        print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="budget-monitor", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)

    m = sub.add_parser("monthly", help="ingest, validate, store, compute and alert for a month")
    m.add_argument("fund_dir")
    m.add_argument("--month", required=True, help="YYYY-MM")
    m.add_argument("--db", default=None, help="SQLAlchemy URL (default: embedded SQLite)")
    m.add_argument("--source-url", default=None, help="pull the month from this SQL database first")
    m.add_argument("--no-send", action="store_true", help="queue alerts without sending them")
    m.set_defaults(func=_monthly)

    y = sub.add_parser("year-end", help="write the self-evaluation outputs")
    y.add_argument("fund_dir")
    y.add_argument("--year", required=True, type=int)
    y.add_argument("--out", required=True)
    y.add_argument("--db", default=None)
    y.add_argument("--no-send", action="store_true", help="write the outputs; queue and send nothing")
    y.add_argument(
        "--draft", action="store_true", help="before December is closed: outputs marked 草稿, never queued or mailed"
    )
    y.set_defaults(func=_year_end)

    pl = sub.add_parser(
        "pull", help="pull a month's tables from the fund's source (or a SQL database) into the fund dir"
    )
    pl.add_argument("fund_dir")
    pl.add_argument("--month", required=True)
    pl.add_argument("--source-url", default=None, help="a SQL database instead of fund.yaml's source")
    pl.set_defaults(func=_pull)

    d = sub.add_parser("data-docs", help="validate a fund directory into offline Data Docs (<out>/data_docs)")
    d.add_argument("fund_dir")
    d.add_argument("--out", required=True)
    d.set_defaults(func=_data_docs)

    a = sub.add_parser("audit", help="export the year's corrections, rejections and mails sent (xlsx + csv)")
    a.add_argument("fund_dir")
    a.add_argument("--year", required=True, type=int)
    a.add_argument("--out", required=True)
    a.add_argument("--db", default=None, help="SQLAlchemy URL (default: embedded SQLite)")
    a.set_defaults(func=_audit)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Level on the handler too: some libraries (GX) lower their own loggers' level,
    # and stderr must stay one line when input is rejected.
    level = logging.INFO if args.verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.setLevel(level)
    try:
        return args.func(args)
    except BaseException as exc:  # noqa: BLE001 - every failure ends in one line and an exit code
        if isinstance(exc, (SystemExit, KeyboardInterrupt)):
            raise
        code, line = classify(exc)
        if code in (EXIT_INFRA, EXIT_BUG):
            line += f"。详细信息见日志：{_log_traceback(exc, args)}"
        monthly = getattr(exc, "monthly", None)
        if monthly is not None:
            print(monthly.summary())
        print(line, file=sys.stderr)
        return code


def classify(exc: BaseException) -> tuple[int, str]:
    """(exit code, one Chinese line) for a failure of a CLI command."""
    from sqlalchemy.exc import DBAPIError, OperationalError

    from budget_monitor.config import FundConfigError
    from budget_monitor.intake import SourceError
    from budget_monitor.pipeline import MonthRejected

    busy = _optional("budget_monitor.locks", "FundBusy")
    render = _optional("budget_monitor.report", "RenderError")
    if isinstance(exc, MonthRejected):
        return EXIT_INPUT, f"输入被拒绝：{exc.reason}"
    if isinstance(exc, SourceError):
        return (
            EXIT_INFRA,
            f"运行失败：未能从数据来源拉取本月数据：{_first_line(exc)}；未写入任何数据，请检查后重新运行本命令",
        )
    if busy is not None and isinstance(exc, busy):
        return EXIT_BUSY, f"未运行：{_first_line(exc)}"
    if isinstance(exc, (OperationalError, DBAPIError)) and not _is_data_error(exc):
        return EXIT_INFRA, (
            "运行失败：数据库不可用或连接中断"
            f"（{type(exc.orig or exc).__name__}）；已入库的数据不受影响，"
            "请检查数据库服务后重新运行本命令"
        )
    if render is not None and isinstance(exc, render):
        return EXIT_INFRA, f"运行失败：报告模板渲染失败（{_first_line(exc)}）；未写出任何报告文件，请检查模板"
    if isinstance(exc, OSError):
        return EXIT_INFRA, _os_error_line(exc)
    if isinstance(exc, MemoryError):
        return EXIT_INFRA, "运行失败：内存不足；未写出任何部分结果，请在内存更大的机器上重新运行"
    if isinstance(exc, (FundConfigError, ValueError)):
        return EXIT_INPUT, f"错误：{_first_line(exc)}"
    return EXIT_BUG, f"运行失败：程序内部错误（{type(exc).__name__}）；请将日志交给运维人员"


def _os_error_line(exc: OSError) -> str:
    where = f"“{exc.filename}”" if exc.filename else ""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        what = f"磁盘空间不足，无法写入{where}"
    elif exc.errno == errno.EFBIG:
        what = f"文件超过允许的大小，无法写入{where}"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        what = f"没有权限写入或读取{where}"
    else:
        what = f"文件操作失败{where}（{exc.strerror or type(exc).__name__}）"
    return f"运行失败：{what}；未写出任何部分结果，处理后重新运行本命令即可"


def _is_data_error(exc: BaseException) -> bool:
    from sqlalchemy.exc import DataError, IntegrityError

    return isinstance(exc, (DataError, IntegrityError))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _optional(module: str, name: str) -> type | None:
    import importlib

    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None


def log_path() -> Path:
    from budget_monitor.store import default_home

    return default_home() / "logs" / "budget-monitor.log"


def _log_traceback(exc: BaseException, args: argparse.Namespace) -> str:
    """Append the traceback to the log file; return its path (or why it could not be written)."""
    import traceback
    from datetime import datetime

    from budget_monitor.periods import TZ

    path = log_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with path.open("a", encoding="utf-8") as fh:
            stamp = datetime.now(TZ).isoformat(timespec="seconds")
            fh.write(f"--- {stamp} budget-monitor {' '.join(sys.argv[1:])}\n")
            fh.write("".join(traceback.format_exception(exc)))
    except OSError as log_exc:
        return f"{path}（无法写入：{log_exc.strerror}）"
    return str(path)


if __name__ == "__main__":
    sys.exit(main())
