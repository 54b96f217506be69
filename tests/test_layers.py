"""The house's layers, enforced: import-linter contracts in pyproject.toml plus
two checks it cannot express (DAG files stay thin; the pure modules read no files)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PURE = ("pace.py", "targets.py", "scoring.py")
# Calls that read or write files; a pure module gets its data passed in.
IO_CALLS = {"open", "read_text", "read_bytes", "write_text", "write_bytes", "safe_load", "load_fund_config"}


def test_import_contracts_kept() -> None:
    """dags > plugins > pipeline > (alerts, report) > facts > base; no Airflow in the package."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "include"), str(REPO / "plugins")]))
    lint = Path(sys.executable).parent / "lint-imports"
    proc = subprocess.run([str(lint), "--no-cache"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def _imports(tree: ast.AST) -> list[tuple[str, int]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.module, node.lineno))
    return found


def test_dags_reach_the_package_only_through_plugins() -> None:
    """A DAG file is wiring: it imports Airflow and budget_monitor_airflow, never the package itself."""
    bad = []
    for path in sorted((REPO / "dags").glob("*.py")):
        for name, line in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            if name == "budget_monitor" or name.startswith("budget_monitor."):
                bad.append(f"{path.name}:{line} imports {name}")
    assert not bad, bad


def test_dags_import_nothing_heavy_at_parse_time() -> None:
    """Module-level imports of a DAG file are what the dag-processor pays on every parse."""
    heavy = ("pandas", "great_expectations", "sqlalchemy", "matplotlib", "openpyxl", "docx", "budget_monitor")
    bad = []
    for path in sorted((REPO / "dags").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            for name, line in _imports(node) if isinstance(node, (ast.Import, ast.ImportFrom)) else []:
                if name.split(".")[0] in heavy:
                    bad.append(f"{path.name}:{line} imports {name}")
    assert not bad, bad


def test_pure_modules_read_no_files() -> None:
    """pace, targets and scoring compute; their inputs (configs, texts) are passed in."""
    bad = []
    for name in PURE:
        tree = ast.parse((REPO / "include" / "budget_monitor" / name).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                fn = node.func
                called = fn.id if isinstance(fn, ast.Name) else fn.attr if isinstance(fn, ast.Attribute) else ""
                if called in IO_CALLS:
                    bad.append(f"{name}:{node.lineno} calls {called}")
    assert not bad, bad


def test_zone_and_quarter_names_are_defined_once() -> None:
    """Asia/Shanghai and 第一季度… are budget_monitor/periods.py's; every other module imports them."""
    once = {"Asia/Shanghai", "第一季度", "第二季度", "第三季度", "第四季度"}
    home = REPO / "include" / "budget_monitor" / "periods.py"
    bad = []
    for root in ("include", "plugins", "dags"):
        for path in sorted((REPO / root).rglob("*.py")):
            if path == home:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Constant) and node.value in once:
                    bad.append(f"{path.relative_to(REPO)}:{node.lineno} {node.value}")
    assert not bad, bad


def test_architecture_md_maps_every_module() -> None:
    """docs/architecture.md's module map names each module of the package, the plugins and the DAGs."""
    doc = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    house = doc.split("## The house", 1)[1].split("```")[1]
    named = {word for line in house.splitlines() for word in line.split()[:1]}
    bad = []
    for root in ("include/budget_monitor", "plugins/budget_monitor_airflow", "dags"):
        for path in sorted((REPO / root).rglob("*.py")):
            if path.name != "__init__.py" and "versions" not in path.parts and path.name not in named:
                bad.append(str(path.relative_to(REPO)))
    assert not bad, f"add a line for each to docs/architecture.md: {bad}"
