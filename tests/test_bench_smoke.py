"""Smoke test of the benchmark harness: `bench/run.py --small` runs every stage.

No timing assertions (the machine is shared): only that each stage ran, the
pipeline and the baselines agree on the aggregated money, and the results
file has the table. Needs PostgreSQL for stage a; with CI=true a missing
server fails the test (it is never skipped).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_bench_run_small_smoke(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    env = dict(os.environ, BENCH_WORK=str(tmp_path / "work"))
    ans = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run.py"), "--small", "--results", str(results), "--repeat", "1"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert ans.returncode == 0, ans.stdout[-4000:] + ans.stderr[-4000:]
    doc = json.loads(results.read_text(encoding="utf-8"))
    stages = doc["stages"]
    for name in ("a_sqlite", "a_postgres", "a_duckdb", "b", "c", "d", "e"):
        assert name in stages, name
        assert "error" not in stages[name], (name, stages[name].get("error"))
        assert stages[name]["peak_tree_mib"] > 0
    for name in ("a_sqlite", "a_postgres"):
        assert "mismatch" not in stages[name]  # pipeline and bare baseline store the same money
        assert stages[name]["files"] == ["budget:loaded", "payments:loaded"]
    assert stages["a_duckdb"]["net_fen"] > 0
    assert stages["b"]["gx_ok"] and stages["b"]["mask_failures"] == 0
    assert all(g.get("state", "").endswith("success") for g in stages["d"]["growth"])
    assert stages["e"]["errors"] == 0 and stages["e"]["self_evaluation_files"] == stages["e"]["funds"]
    assert "stage" in doc["table"] and doc["machine"]["nproc"]
