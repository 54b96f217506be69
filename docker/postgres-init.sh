#!/usr/bin/env bash
# Run once by the postgres image on an empty data directory
# (/docker-entrypoint-initdb.d). The budget-monitor store gets its own role,
# owner of its own database only: no superuser, no CREATEDB/CREATEROLE, and
# no way into Airflow's metadata database (CONNECT revoked from PUBLIC).
# The password comes in psql's quoting (:'pw'), never spliced into SQL text.
set -euo pipefail
: "${BUDGET_MONITOR_DB_PASSWORD:?BUDGET_MONITOR_DB_PASSWORD is required}"
psql -v ON_ERROR_STOP=1 -q --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v pw="$BUDGET_MONITOR_DB_PASSWORD" -v airflow_db="$POSTGRES_DB" <<'SQL'
CREATE ROLE budget_monitor LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'pw';
CREATE DATABASE budget_monitor OWNER budget_monitor;
REVOKE ALL ON DATABASE budget_monitor FROM PUBLIC;
REVOKE ALL ON DATABASE :"airflow_db" FROM PUBLIC;
SQL
