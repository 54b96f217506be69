"""Static checks: ruff (pinned in the lock) over the code; unused imports and undefined names fail CI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_ruff_passes() -> None:
    ruff = Path(sys.executable).parent / "ruff"
    proc = subprocess.run(
        [str(ruff), "check", "include", "dags", "plugins", "scripts", "bench", "tests"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_format_is_applied() -> None:
    """One layout for everyone: `ruff format` (pinned) leaves every file unchanged."""
    ruff = Path(sys.executable).parent / "ruff"
    proc = subprocess.run(
        [str(ruff), "format", "--check", "include", "dags", "plugins", "scripts", "bench", "tests"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, "run `.venv/bin/ruff format .`:\n" + proc.stdout + proc.stderr


def test_package_imports_no_airflow() -> None:
    """include/budget_monitor runs anywhere: importing all of it loads no Airflow."""
    code = (
        "import importlib, pkgutil, sys, budget_monitor\n"
        "for m in pkgutil.walk_packages(budget_monitor.__path__, 'budget_monitor.'):\n"
        "    if '.migrations' not in m.name: importlib.import_module(m.name)\n"
        "bad = sorted(k for k in sys.modules if k == 'airflow' or k.startswith('airflow.'))\n"
        "assert not bad, bad\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
