#!/usr/bin/env python3
"""pyinstrument profiles of the hot paths the benchmark found (text into bench/profiles/).

    .venv/bin/python bench/profile.py yearend --data bench/data/full --funds 8
    .venv/bin/python bench/profile.py close   --data bench/data/full --funds 8
    .venv/bin/python bench/profile.py load    --data bench/data/full          # stage a, SQLite

Each profile first runs one fund untimed (imports, caches), then profiles the
next ``--funds`` funds, so the tree shows the per-fund cost, not start-up.
Needs pyinstrument (not in the lock; add it to the test extra to keep this).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from stages import WORK, _scratch_funds, seed_store  # noqa: E402


def _profile(name: str, fn, out_dir: Path, interval: float) -> Path:
    from pyinstrument import Profiler

    prof = Profiler(interval=interval)
    prof.start()
    fn()
    prof.stop()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.txt"
    path.write_text(
        prof.output_text(unicode=True, color=False, show_all=os.environ.get("PROFILE_ALL") == "1"), encoding="utf-8"
    )
    print(prof.output_text(unicode=True, color=False))
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("target", choices=["yearend", "close", "monthload", "load"])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--funds", type=int, default=8)
    p.add_argument("--month", type=int, default=6)
    p.add_argument("--interval", type=float, default=0.001)
    p.add_argument("--out", type=Path, default=HERE / "profiles")
    args = p.parse_args(argv)
    man = json.loads((args.data / "manifest.json").read_text(encoding="utf-8"))
    year = man["sizes"]["year"]
    work = WORK / f"profile_{args.target}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    os.environ["BUDGET_MONITOR_HOME"] = str(work / "home")
    db = f"sqlite:///{work / 'store.db'}"
    from budget_monitor import pipeline, store

    if args.target in ("yearend", "close", "monthload"):
        funds = man["funds"][: args.funds + 1]
        through = 12 if args.target == "yearend" else args.month
        _scratch_funds(args.data, work / "funds", funds, through)
        if args.target == "monthload":  # earlier months loaded by earlier closes
            seed_store(args.data, db, funds, through, register_files=True)
        else:
            seed_store(args.data, db, funds, through + 1, register_files=False)
        dirs = [work / "funds" / c for c in funds]
        if args.target == "yearend":

            def one(d: Path) -> None:
                pipeline.run_year_end(d, year, work / "out" / d.name, db, None)
        elif args.target == "monthload":

            def one(d: Path) -> None:
                pipeline.load_month(d, f"{year}-{args.month:02d}", db)
        else:

            def one(d: Path) -> None:
                pipeline.close_month(d, f"{year}-{args.month:02d}", db)

        one(dirs[0])  # warm: imports, fonts, templates

        def rest() -> None:
            for d in dirs[1:]:
                one(d)

        _profile(f"{args.target}_{args.funds}_funds", rest, args.out, args.interval)
    else:
        from budget_monitor import validate
        from budget_monitor.config import load_fund_config

        import great_expectations  # noqa: F401

        validate.gx_runtime()
        fdir = work / "fund_a"
        shutil.copytree(args.data / "province" / "fund_a", fdir, copy_function=os.link)
        cfg = load_fund_config(fdir)
        store.open_store(db)

        def run() -> None:
            pipeline.load_month(fdir, f"{year}-12", db, cfg=cfg)
            store.read_payments_by_day(store.open_store(db), cfg.code, date(year, 12, 31))

        _profile(f"load_{man['sizes']['payments']}_rows", run, args.out, max(args.interval, 0.005))
    return 0


if __name__ == "__main__":
    sys.exit(main())
