"""Which month / year a run is about (Asia/Shanghai)."""

from __future__ import annotations

import pendulum

TZ = "Asia/Shanghai"


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


def batch_label(batch: list[str]) -> str:
    """A mapped task's label in the UI: the batch's fund directory names."""
    return ",".join(d.rstrip("/").rsplit("/", 1)[-1] for d in batch)
