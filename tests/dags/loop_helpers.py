"""The finance office's loop in DAG tests: a store with the example fund closed
through a month (the package pipeline, fast), and answers given through
Airflow's REST API by plugins/budget_monitor_airflow/responder.py."""

from __future__ import annotations

import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "jiangmen-2021"
TAISHAN = "台山市市场监督管理局"


def closed_through(inbox: Path, db: str, last_month: int) -> Path:
    """Copy the example fund into ``inbox`` and load + close it, January to ``last_month``."""
    from budget_monitor.config import load_fund_config
    from budget_monitor.pipeline import close_month, load_month

    fund = inbox / EXAMPLE.name
    shutil.copytree(EXAMPLE, fund)
    cfg = load_fund_config(fund)
    for m in range(1, last_month + 1):
        load_month(fund, f"2021-{m:02d}", db, cfg=cfg)
        close_month(fund, f"2021-{m:02d}", db, cfg=cfg, chart=False)
    return fund


def unit_of(detail: dict) -> str:
    """The unit a 核实反馈 request is about (its subject starts with it)."""
    return detail["subject"].split("】", 1)[1].split(" ", 1)[0]
