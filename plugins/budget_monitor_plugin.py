"""Airflow plugin of budget-monitor: the 执行监控看板 (dashboard) and 隔离区 (quarantine) pages in the UI."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from budget_monitor_airflow.lazy_app import LazyApp


class BudgetMonitorPlugin(AirflowPlugin):
    name = "budget_monitor"
    fastapi_apps = [
        {
            "app": LazyApp("budget_monitor_airflow.quarantine_view"),
            "url_prefix": "/budget-monitor",
            "name": "budget-monitor quarantine",
        },
        {
            "app": LazyApp("budget_monitor_airflow.dashboard"),
            "url_prefix": "/budget-dashboard",
            "name": "budget-monitor dashboard",
        },
    ]
    external_views = [
        {
            "name": "执行监控看板 Dashboard",
            "href": "/budget-dashboard/",
            "destination": "nav",
            "url_route": "budget_monitor_dashboard",
        },
        {
            "name": "隔离区 Quarantine",
            "href": "/budget-monitor/quarantine",
            "destination": "nav",
            "url_route": "budget_monitor_quarantine",
        },
    ]
