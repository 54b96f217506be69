# budget-monitor on Airflow 3: our pinned lock + the package + CJK fonts.
# Build: docker compose build   (docker-compose.yaml builds it once, for airflow-init)
#
# AIRFLOW_BASE_IMAGE defaults to the official image. A machine without a
# registry builds on the stand-in of scripts/build_standin_images.sh (same
# contract: user airflow uid 50000 gid 0, AIRFLOW_HOME=/opt/airflow, the
# `airflow` entrypoint, Python 3.11); tests/compose does that.
# Only the legacy builder's features are used (no BuildKit needed).
ARG AIRFLOW_BASE_IMAGE=apache/airflow:3.3.2-python3.11

# ---- stage 1: wheels of what the base image lacks (the only step with network).
FROM ${AIRFLOW_BASE_IMAGE} AS wheels
# docker/build-ca/ holds an optional CA bundle for a TLS-inspecting proxy
# (see its README); it stays in this stage.
COPY --chown=airflow:0 docker/build-ca/ /tmp/build-ca/
COPY --chown=airflow:0 requirements.txt pyproject.toml README.md /opt/budget-monitor/
WORKDIR /opt/budget-monitor
# Dependencies first (cached until the lock or pyproject.toml change): the
# production extra only ("airflow"). The lock also pins the test tools, used
# here as constraints, so they are never installed. What the base image
# already has at the locked version is not downloaded again.
RUN set -e; \
    if [ -s /tmp/build-ca/ca-certificates.crt ]; then \
      export PIP_CERT=/tmp/build-ca/ca-certificates.crt SSL_CERT_FILE=/tmp/build-ca/ca-certificates.crt; fi; \
    mkdir -p include; \
    pip install --no-cache-dir --quiet --dry-run --ignore-installed --report /tmp/all.json \
      -c requirements.txt ".[airflow]" >/dev/null; \
    pip list --format=json > /tmp/have.json; \
    python -c 'import json; norm = lambda n: n.lower().replace("_", "-"); have = {(norm(p["name"]), p["version"]) for p in json.load(open("/tmp/have.json"))}; need = [(i["metadata"]["name"], i["metadata"]["version"]) for i in json.load(open("/tmp/all.json"))["install"] if norm(i["metadata"]["name"]) != "budget-monitor"]; print("\n".join(f"{n}=={v}" for n, v in need if (norm(n), v) not in have))' > /tmp/need.txt; \
    mkdir -p /tmp/wheels/deps /tmp/wheels/project; \
    if [ -s /tmp/need.txt ]; then pip wheel --no-cache-dir --quiet --no-deps -w /tmp/wheels/deps -r /tmp/need.txt; fi
# Then the package itself (include/budget_monitor).
COPY --chown=airflow:0 include /opt/budget-monitor/include
RUN set -e; \
    if [ -s /tmp/build-ca/ca-certificates.crt ]; then \
      export PIP_CERT=/tmp/build-ca/ca-certificates.crt SSL_CERT_FILE=/tmp/build-ca/ca-certificates.crt; fi; \
    pip wheel --no-cache-dir --quiet --no-deps -w /tmp/wheels/project .

# ---- stage 2: the image (no network needed from here on but for the fonts' apt).
FROM ${AIRFLOW_BASE_IMAGE}
USER root
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends fonts-noto-cjk \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
USER airflow
COPY --chown=airflow:0 requirements.txt /opt/budget-monitor/requirements.txt
COPY --chown=airflow:0 --from=wheels /tmp/wheels/deps /tmp/wheels
RUN set -- /tmp/wheels/*.whl; \
    if [ -e "$1" ]; then pip install --no-cache-dir --quiet --no-index --find-links /tmp/wheels \
      -c /opt/budget-monitor/requirements.txt "$@"; fi; \
    rm -rf /tmp/wheels
COPY --chown=airflow:0 --from=wheels /tmp/wheels/project /tmp/project
RUN pip install --no-cache-dir --quiet --no-index --no-deps /tmp/project/*.whl && rm -rf /tmp/project
COPY docker/entrypoint.py docker/init.py /opt/budget-monitor/docker/
# The database URIs are built from the passwords, URL-encoded, then the
# base image's entrypoint runs as usual (docker/entrypoint.py).
ENTRYPOINT ["/usr/bin/dumb-init", "--", "/opt/budget-monitor/docker/entrypoint.py"]
CMD []
