# Source me: environment for running Airflow natively from this checkout.
#
#   source scripts/airflow_env.sh
#   airflow standalone            # SQLite + LocalExecutor, UI on :8080 (login in the log)
#
# The full distributed stack (CeleryExecutor, PostgreSQL, Redis) without Docker:
#   .venv/bin/python tests/distributed/cluster.py serve
# In Docker: docker-compose.yaml (docs/operations.md).
_bm_repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$_bm_repo/.venv/bin:$PATH"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$_bm_repo/var/airflow}"
export AIRFLOW__CORE__DAGS_FOLDER="$_bm_repo/dags"
export AIRFLOW__CORE__PLUGINS_FOLDER="$_bm_repo/plugins"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__DEFAULT_TIMEZONE=Asia/Shanghai
export BUDGET_MONITOR_FUNDS_DIR="${BUDGET_MONITOR_FUNDS_DIR:-$_bm_repo/var/inbox}"
export BUDGET_MONITOR_REPORTS_DIR="${BUDGET_MONITOR_REPORTS_DIR:-$_bm_repo/var/reports}"
export BUDGET_MONITOR_HOME="${BUDGET_MONITOR_HOME:-$_bm_repo/var}"
# Local mail catcher:  .venv/bin/python -m aiosmtpd -n -l 127.0.0.1:8025
export AIRFLOW_CONN_SMTP_DEFAULT="${AIRFLOW_CONN_SMTP_DEFAULT:-{\"conn_type\":\"smtp\",\"host\":\"127.0.0.1\",\"port\":8025,\"extra\":{\"disable_ssl\":true,\"disable_tls\":true,\"from_email\":\"budget-monitor@localhost\"}}}"
mkdir -p "$AIRFLOW_HOME" "$BUDGET_MONITOR_FUNDS_DIR" "$BUDGET_MONITOR_REPORTS_DIR"
unset _bm_repo
