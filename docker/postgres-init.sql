-- The budget-monitor store lives beside Airflow's metadata DB, in its own database.
CREATE DATABASE budget_monitor OWNER airflow;
