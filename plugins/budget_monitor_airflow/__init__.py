"""Airflow glue of budget-monitor: connections, mail, failure notifier, UI view.

Lives in plugins/ (on every Airflow process's sys.path) so the DAG files stay
a schedule plus a wiring diagram. Imports here are light (stdlib, airflow.sdk);
the package ``budget_monitor`` and the SMTP provider are imported inside
functions, at task run time.
"""
