"""Which month / year a run is about (Asia/Shanghai)."""

from __future__ import annotations

import pendulum

# budget_monitor.periods is stdlib only, so a DAG file may import this module at parse time.
from budget_monitor.periods import QUARTER_ZH, TZ_NAME as TZ

__all__ = ["QUARTER_ZH", "TZ", "run_moment", "month_to_process", "batches", "batch_label", "closed_month"]


def run_moment(context) -> pendulum.DateTime:
    """The run's logical date, or its run_after when triggered without one."""
    when = context.get("logical_date") or context["dag_run"].run_after
    return pendulum.instance(when).in_timezone(TZ)


def month_to_process(context) -> str:
    """Param ``month`` if given, else the month before the run's date (the closed month)."""
    override = (context["params"].get("month") or "").strip()
    if override:
        return override
    return run_moment(context).start_of("month").subtract(months=1).format("YYYY-MM")


def batches(items: list[str], size: int) -> list[list[str]]:
    size = max(1, int(size))
    return [items[i : i + size] for i in range(0, len(items), size)]


# Airflow stores a mapped task's rendered label in task_instance.rendered_map_index,
# a VARCHAR(250); PostgreSQL refuses a longer one and the task fails (SQLite does not
# check, so dag.test() never showed it: a batch of 100 funds failed on the cluster).
MAP_LABEL_MAX = 250


def batch_label(batch: list[str]) -> str:
    """A mapped task's label in the UI: the batch's fund directory names, or, when
    they do not fit the label column, the first and last with the count."""
    names = [d.rstrip("/").rsplit("/", 1)[-1] for d in batch]
    label = ",".join(names)
    if len(label) <= MAP_LABEL_MAX:
        return label
    short = f"{names[0]} … {names[-1]}（共{len(names)}个）"
    return short if len(short) <= MAP_LABEL_MAX else f"{len(names)}个基金"


def closed_month(context) -> str | None:
    """Param ``month`` if given, else the latest month whose close triggered this
    run (asset ``monthly_close`` extra ``period``), else None."""
    from budget_monitor_airflow.assets import MONTHLY_CLOSE

    override = (context["params"].get("month") or "").strip()
    if override:
        return override
    events = context.get("triggering_asset_events") or {}
    periods = [
        str((ev.extra or {}).get("period") or "")
        for key in events
        if key.uri == MONTHLY_CLOSE.uri
        for ev in events[key]
    ]
    periods = [p for p in periods if p]
    return max(periods) if periods else None
