#!/usr/bin/env bash
# Browser tests of the dashboard (tests/dags/test_dashboard_browser.py):
# Debian's Chromium (apt) driven by Playwright (PyPI, into .venv). Playwright
# never downloads a browser here: the tests launch /usr/bin/chromium.
# Idempotent: a second run only checks. To be folded into scripts/setup.sh
# (and playwright pinned in requirements.txt) by the lead.
set -euo pipefail
cd "$(dirname "$0")/.."

PLAYWRIGHT_VERSION=${PLAYWRIGHT_VERSION:-1.65.2}

if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup_browser: installing chromium (apt)" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "setup_browser: please install chromium (apt)" >&2
    exit 1
  fi
fi

if ! .venv/bin/python -c "import playwright" >/dev/null 2>&1; then
  echo "setup_browser: installing playwright==$PLAYWRIGHT_VERSION into .venv" >&2
  if [ -x .venv/bin/uv ]; then
    .venv/bin/uv pip install -q --python .venv/bin/python "playwright==$PLAYWRIGHT_VERSION"
  else
    .venv/bin/python -m pip install -q --disable-pip-version-check "playwright==$PLAYWRIGHT_VERSION"
  fi
fi
chromium --version
.venv/bin/python -c "import importlib.metadata as m; print('playwright', m.version('playwright'))"
