# budget-monitor on the official Airflow 3 image: our pinned lock + the package.
# Build: docker compose build   (docker-compose.yaml uses this file)
FROM apache/airflow:3.3.2-python3.11

# CJK fonts for the charts and the .docx report (the package renders Chinese).
USER root
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends fonts-noto-cjk \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
USER airflow

# The lock pins apache-airflow to the image's version, so installing it over
# the image's constraints changes no Airflow component.
COPY --chown=airflow:0 requirements.txt /opt/budget-monitor/requirements.txt
RUN pip install --no-cache-dir -r /opt/budget-monitor/requirements.txt

# The package itself (include/budget_monitor); DAGs and plugins are mounted.
COPY --chown=airflow:0 pyproject.toml README.md /opt/budget-monitor/
COPY --chown=airflow:0 include /opt/budget-monitor/include
RUN pip install --no-cache-dir --no-deps /opt/budget-monitor
