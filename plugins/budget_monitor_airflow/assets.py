"""Assets shared by the DAGs: the monthly DAG produces, the year-end DAG consumes."""

from __future__ import annotations

from airflow.sdk import Asset

# One event per successful monthly close, extra = {"year", "month", "period"}.
MONTHLY_CLOSE = Asset(name="budget_monitor_monthly_close", uri="budget_monitor://monthly_close")
