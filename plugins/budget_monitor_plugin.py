"""Airflow plugin of budget-monitor: a 隔离区 (quarantine) page in the UI."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from budget_monitor_airflow.quarantine_view import LazyApp


class BudgetMonitorPlugin(AirflowPlugin):
    name = "budget_monitor"
    fastapi_apps = [
        {"app": LazyApp(), "url_prefix": "/budget-monitor", "name": "budget-monitor quarantine"},
    ]
    external_views = [
        {
            "name": "隔离区 Quarantine",
            "href": "/budget-monitor/quarantine",
            "destination": "nav",
            "url_route": "budget_monitor_quarantine",
        },
    ]
