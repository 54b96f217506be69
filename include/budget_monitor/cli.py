"""`budget-monitor`: the command line over the same functions the DAGs call.

    budget-monitor monthly <fund_dir> --month YYYY-MM [--db URL] [--no-send]
    budget-monitor year-end <fund_dir> --year YYYY --out <dir> [--db URL] [--no-send]
    budget-monitor pull <fund_dir> --month YYYY-MM --source-url URL
    budget-monitor data-docs <fund_dir> --out <dir>

Exit codes: 0 success; 2 input rejected or invalid (one-line reason on
stderr); 1 anything else unexpected.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path


def _mailer_for(fund_dir: Path, send: bool):  # -> Mailer | None
    if not send:
        return None
    from budget_monitor.config import load_fund_config
    from budget_monitor.outbox import SmtpMailer

    cfg = load_fund_config(fund_dir).smtp
    host = os.environ.get("BUDGET_MONITOR_SMTP_HOST", cfg.host)
    port = int(os.environ.get("BUDGET_MONITOR_SMTP_PORT", cfg.port))
    return SmtpMailer(host=host, port=port, starttls=cfg.starttls, user=cfg.user,
                      password=os.environ.get(cfg.password_env), sender=cfg.sender)


def _monthly(args: argparse.Namespace) -> int:
    from budget_monitor.pipeline import run_monthly

    fund_dir = Path(args.fund_dir)
    if args.source_url:
        from budget_monitor.config import load_fund_config
        from budget_monitor.sources import SqlSource, pull_month

        pull_month(SqlSource(args.source_url), load_fund_config(fund_dir).code, args.month,
                   fund_dir)
    result = run_monthly(fund_dir, args.month, args.db, _mailer_for(fund_dir, not args.no_send))
    print(result.summary())
    return 0


def _year_end(args: argparse.Namespace) -> int:
    from budget_monitor.pipeline import run_year_end

    fund_dir = Path(args.fund_dir)
    result = run_year_end(fund_dir, args.year, Path(args.out), args.db,
                          _mailer_for(fund_dir, not args.no_send))
    print(result.summary())
    return 0


def _pull(args: argparse.Namespace) -> int:
    from budget_monitor.config import load_fund_config
    from budget_monitor.sources import SqlSource, pull_month

    fund_dir = Path(args.fund_dir)
    paths = pull_month(SqlSource(args.source_url), load_fund_config(fund_dir).code, args.month,
                       fund_dir)
    for p in paths:
        print(p)
    return 0


def _data_docs(args: argparse.Namespace) -> int:
    from budget_monitor.validate import build_data_docs

    print(build_data_docs(Path(args.out), fund_dir=Path(args.fund_dir)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="budget-monitor", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
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
    y.add_argument("--no-send", action="store_true")
    y.set_defaults(func=_year_end)

    pl = sub.add_parser("pull", help="pull a month's tables from a SQL source into the fund dir")
    pl.add_argument("fund_dir")
    pl.add_argument("--month", required=True)
    pl.add_argument("--source-url", required=True)
    pl.set_defaults(func=_pull)

    d = sub.add_parser("data-docs", help="build Great Expectations Data Docs (HTML)")
    d.add_argument("fund_dir")
    d.add_argument("--out", required=True)
    d.set_defaults(func=_data_docs)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Level on the handler too: some libraries (GX) lower their own loggers' level,
    # and stderr must stay one line when input is rejected.
    level = logging.INFO if args.verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.setLevel(level)
    from budget_monitor.config import FundConfigError
    from budget_monitor.pipeline import MonthRejected

    try:
        return args.func(args)
    except MonthRejected as exc:
        print(f"输入被拒绝：{exc.reason}", file=sys.stderr)
        return 2
    except (FundConfigError, ValueError) as exc:
        print(f"错误：{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
              file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
