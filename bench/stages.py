#!/usr/bin/env python3
"""Benchmark stages; each runs in its own process (``bench/run.py`` starts them).

    python bench/stages.py <stage> --data <generated dir> --out <result.json> [options]

Stages: a_sqlite, a_postgres, a_duckdb, b, c, d, e, g (see bench/run.py).
Each writes a JSON dict of timings (``*_s``), per-step peaks (``*_peak_mib``,
sampled) and the process's ``ru_maxrss_mib``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import traceback
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, Recorder, Timings, drop_pg_db, dump, fresh_pg_db  # noqa: E402

WORK = Path(os.environ.get("BENCH_WORK", "/tmp/budget-monitor-bench"))


def _manifest(data: Path) -> dict[str, Any]:
    return json.loads((data / "manifest.json").read_text(encoding="utf-8"))


def _warm(path: Path) -> None:
    """Read a file once so that every contender starts with it in the page cache."""
    with path.open("rb") as fh:
        while fh.read(1 << 22):
            pass


# ----------------------------------------------------------------------------- stage a


def _pipeline_timings() -> Timings:
    """Wrap the package's hot functions to get a breakdown of one load_month run."""
    from budget_monitor import ingest, pipeline, store, validate

    tm = Timings()
    tm.wrap(ingest, "read_table", "ingest.read_table")
    tm.wrap(validate, "validate_table", "validate.validate_table")
    tm.wrap(validate, "check_frame", "validate.check_frame (pandas prepare)")
    tm.wrap(pipeline._Contexts, "__call__", "pipeline._context")
    tm.wrap(pipeline, "_records", "pipeline._records (df -> dicts)")
    tm.wrap(store, "load_rows", "store.load_rows")
    tm.wrap(store, "bulk_insert", "store.bulk_insert")
    tm.wrap(store, "_existing", "store._existing")
    tm.wrap(store, "net_paid_fen", "store.net_paid_fen")
    tm.wrap(store, "sha256_of", "store.sha256_of")
    tm.wrap(store, "archive_file", "store.archive_file")
    return tm


def stage_a(args: argparse.Namespace, rec: Recorder) -> None:
    """Ingest + validate + store + aggregate one 1M-row GBK year: pipeline vs bare baseline."""
    import baseline
    from budget_monitor import pipeline, store
    from budget_monitor.config import load_fund_config

    data = Path(args.data)
    year = _manifest(data)["sizes"]["year"]
    prov = data / "province"
    gbk = prov / f"payments_{year}.gbk.csv"
    fund_a = prov / "fund_a"
    cfg = load_fund_config(fund_a)
    kind = args.stage.split("_", 1)[1]
    work = WORK / args.stage
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    os.environ["BUDGET_MONITOR_HOME"] = str(work / "home")
    dbs: list[str] = []

    def url(name: str) -> str:
        if kind == "postgres":
            dbs.append(name)
            return fresh_pg_db(name)
        return f"sqlite:///{work / (name + '.db')}"

    _warm(gbk)
    rec.put("rows", sum(1 for _ in gbk.open("rb")) - 1)
    # GX import + context are a once-per-process cost (7 s on this machine): paid
    # here, untimed, and reported on its own, so the ratio compares the work per year.
    with rec.step("gx_startup"):
        from budget_monitor import validate

        import great_expectations  # noqa: F401

        validate.gx_runtime()
    rec.put("store", kind)
    try:
        for rep in range(args.repeat):
            # --- bare baseline (schema created untimed, as the pipeline's is)
            eng_b = store.open_store(url(f"bench_a_base_{rep}"))
            store.upsert_fund(eng_b, cfg.code, cfg.name, cfg.year, cfg.department)
            sub = Recorder.__new__(Recorder)
            sub.data, sub.rss = {}, rec.rss
            t0 = time.perf_counter()
            base = baseline.bare_year(gbk, fund_a / "budget.csv", eng_b, cfg.code, year, sub)
            base_s = time.perf_counter() - t0
            eng_b.dispose()
            # --- our pipeline: the real entry point, on a scratch copy of the fund dir
            fdir = work / f"fund_a_{rep}"
            shutil.copytree(fund_a, fdir, copy_function=os.link)
            pipe_url = url(f"bench_a_pipe_{rep}")
            eng_p = store.open_store(pipe_url)
            tm = _pipeline_timings()
            try:
                rec.rss.reset()
                t0 = time.perf_counter()
                res = pipeline.load_month(fdir, f"{year}-12", pipe_url, cfg=cfg)
                load_s = time.perf_counter() - t0
                load_peak = rec.rss.peak_mib()
                t1 = time.perf_counter()
                agg = store.read_payments_by_day(eng_p, cfg.code, date(year, 12, 31))
                agg_s = time.perf_counter() - t1
            finally:
                _unwrap_all()
            statuses = [f"{f.kind}:{f.status}" for f in res.files]
            pipe_s = load_s + agg_s
            net = int(agg["amount_fen"].sum())
            if net != base["net_fen"] or len(agg) != base["groups"]:
                rec.put("mismatch", {"pipeline": [net, len(agg)], "baseline": [base["net_fen"], base["groups"]]})
            best = rec.data.get("pipeline_s")
            if best is None or pipe_s < best:
                rec.data.update({f"{k}": v for k, v in sub.data.items()})
                rec.put("baseline_s", round(base_s, 3))
                rec.put("pipeline_s", round(pipe_s, 3))
                rec.put("pipe_load_s", round(load_s, 3))
                rec.put("pipe_aggregate_s", round(agg_s, 3))
                rec.put("pipe_load_peak_mib", load_peak)
                rec.put("pipeline_breakdown", tm.as_dict())
                rec.put("files", statuses)
            rec.data.setdefault("runs", []).append({"baseline_s": round(base_s, 3), "pipeline_s": round(pipe_s, 3)})
            store.dispose_all()
        rec.put("ratio", round(rec.data["pipeline_s"] / rec.data["baseline_s"], 2))
    finally:
        store.dispose_all()
        for name in dbs:
            drop_pg_db(name)


def _unwrap_all() -> None:
    from budget_monitor import ingest, pipeline, store, validate

    for mod in (ingest, pipeline, store, validate):
        for name, obj in list(vars(mod).items()):
            inner = getattr(obj, "__wrapped__", None)
            if inner is not None and callable(obj) and getattr(obj, "__qualname__", "").endswith("timed"):
                setattr(mod, name, inner)


def stage_a_duckdb(args: argparse.Namespace, rec: Recorder) -> None:
    import baseline

    data = Path(args.data)
    year = _manifest(data)["sizes"]["year"]
    prov = data / "province"
    utf8 = prov / f"payments_{year}.utf8.csv"
    work = WORK / "a_duckdb"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    _warm(utf8)
    best = None
    for _ in range(args.repeat):
        with rec.step("duckdb_run"):
            out = baseline.duckdb_year(utf8, prov / "fund_a" / "budget.csv", work / "year.duckdb", year)
        best = rec.data["duckdb_run_s"] if best is None else min(best, rec.data["duckdb_run_s"])
    rec.put("duckdb_s", best)
    rec.put("groups", out["groups"])
    rec.put("net_fen", out["net_fen"])


# ----------------------------------------------------------------------------- stage b


def stage_b(args: argparse.Namespace, rec: Recorder) -> None:
    """Great Expectations (the package's validate_table) vs the same checks as pandas masks."""
    import baseline
    import numpy as np
    from budget_monitor import ingest, validate
    from budget_monitor.config import load_fund_config
    from budget_monitor.validation.runtime import specs_for

    data = Path(args.data)
    year = _manifest(data)["sizes"]["year"]
    prov = data / "province"
    fund_a = prov / "fund_a"
    cfg = load_fund_config(fund_a)
    with rec.step("read_frame"):
        table = ingest.read_table(prov / f"payments_{year}.gbk.csv", "payments")
        budget = ingest.read_table(fund_a / "budget.csv", "budget")
    ctx = validate.ValidationContext.for_fund(cfg, fund_dir=fund_a, budget=budget)
    with rec.step("gx_import"):
        import great_expectations  # noqa: F401
    active = tuple(r for r in validate.rules_for("payments") if all(ctx.has(n) for n in r.needs()))
    rec.put("expectations", sum(len(r.columns) for r in active))
    with rec.step("gx_context_startup"):
        rt = validate.gx_runtime()
        rt.definition("payments", specs_for(active))
    df = table.df
    units, docs = ctx.units, ctx.doc_nos
    masks_runs, gx_runs, prep_runs = [], [], []
    for _ in range(args.repeat):
        with rec.step("masks"):
            fails = baseline.payment_masks(
                df["voucher_no"],
                df["unit"],
                df["doc_no"],
                df["amount_fen"].fillna(0).to_numpy(dtype=np.int64),
                ~table.invalid["amount_fen"],
                table.empty["amount_fen"],
                df["pay_date"],
                table.empty["pay_date"],
                df["kind"],
                units=units,
                docs=docs,
                year=year,
                remaining_fen=int(ctx.adjusted_budget_fen) - int(ctx.stored_net_fen),
            )
        masks_runs.append(rec.data["masks_s"])
        with rec.step("check_frame"):
            validate.check_frame(table, active, ctx)
        prep_runs.append(rec.data["check_frame_s"])
        with rec.step("gx_validate_table"):
            report = validate.validate_table(table, ctx)
        gx_runs.append(rec.data["gx_validate_table_s"])
    rec.put("mask_failures", sum(fails.values()))
    rec.put("gx_ok", report.ok)
    rec.put("masks_s", min(masks_runs))
    rec.put("check_frame_s", min(prep_runs))
    rec.put("gx_validate_table_s", min(gx_runs))
    rec.put("gx_runs", gx_runs)
    rec.put("ratio", round(min(gx_runs) / min(masks_runs), 2))
    rec.put("rows", len(df))


# ----------------------------------------------------------------------------- stage c


def _airflow_env(home: Path) -> dict[str, str]:
    sys.path.insert(0, str(REPO / "plugins"))
    from budget_monitor_airflow.settings import standalone_airflow_env

    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))}
    env.update(
        {
            **standalone_airflow_env(home),
            "BUDGET_MONITOR_RETRY_DELAY_SECONDS": "1",
            "PYTHONPATH": os.pathsep.join([str(REPO / "plugins"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        }
    )
    return env


def _wall(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    ans = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO)
    dt = time.perf_counter() - t0
    if ans.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {ans.stderr[-2000:]}")
    return dt


def stage_c(args: argparse.Namespace, rec: Recorder) -> None:
    """`python dags/<file>.py` vs `python -c "import airflow.sdk"`, min of N interleaved runs."""
    home = WORK / "c_airflow_home"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    env = _airflow_env(home)
    py = sys.executable
    dags = sorted(p for p in (REPO / "dags").glob("*.py") if not p.name.startswith("_"))
    dags.append(Path(__file__).resolve().parent / "trivial_dag.py")  # the floor any TaskFlow DAG pays
    bare: list[float] = []
    per: dict[str, list[float]] = {p.name: [] for p in dags}
    _wall([py, "-c", "import airflow.sdk"], env)  # first run writes airflow.cfg; not counted
    for _ in range(args.repeat):
        bare.append(_wall([py, "-c", "import airflow.sdk"], env))
        for p in dags:
            per[p.name].append(_wall([py, str(p)], env))
    extra = {}
    for name, runs in per.items():
        extra[name] = {"min_s": round(min(runs), 3), "delta_ms": round((min(runs) - min(bare)) * 1000, 1)}
    rec.put("airflow_sdk_import_s", round(min(bare), 3))
    rec.put("airflow_sdk_runs", [round(x, 3) for x in bare])
    rec.put("dags", extra)
    # What a DAG file imports at top level beyond airflow.sdk (the cause of any delta).
    probe = (
        "import sys, runpy, time; import airflow.sdk; before=set(sys.modules); t=time.perf_counter();"
        "runpy.run_path(sys.argv[1]); print(round((time.perf_counter()-t)*1000,1));"
        "print(sorted({m.split('.')[0] for m in set(sys.modules)-before}))"
    )
    # The wall-clock difference of two ~3 s processes is noisy on a shared machine
    # (±300 ms between runs); timing the file inside a process that already imported
    # airflow.sdk resolves tens of ms. Min of N fresh processes.
    for _ in range(args.repeat):
        for p in dags:
            ans = subprocess.run([py, "-c", probe, str(p)], env=env, capture_output=True, text=True, cwd=REPO)
            lines = ans.stdout.strip().splitlines()
            if ans.returncode == 0 and len(lines) >= 2:
                ms = float(lines[-2])
                extra[p.name]["in_process_ms"] = min(ms, extra[p.name].get("in_process_ms", ms))
                extra[p.name]["new_top_modules"] = json.loads(lines[-1].replace("'", '"'))
    ref = extra.get("trivial_dag.py", {}).get("in_process_ms")
    if ref is not None:
        for name, d in extra.items():
            if "in_process_ms" in d:
                d["over_trivial_dag_ms"] = round(d["in_process_ms"] - ref, 1)
    rec.put("dags", extra)


# ----------------------------------------------------------------------------- seeding (d, e)


def seed_store(data: Path, db_url: str, funds: list[str], before_month: int, register_files: bool = True) -> dict:
    """Put months < ``before_month`` of ``funds`` into the store directly (bulk, no validation),
    as if earlier month closes had loaded them; with ``register_files`` the files' sha256 go
    into source_file so that the next close skips them exactly as in production.
    """
    import pandas as pd
    from decimal import Decimal

    import baseline
    from budget_monitor import store
    from budget_monitor.config import load_fund_config

    man = _manifest(data)
    year = man["sizes"]["year"]
    prov = data / "province"
    fset = set(funds)
    engine = store.open_store(db_url)
    now = store.now_local()
    t0 = time.perf_counter()

    def recs(df: pd.DataFrame) -> list[dict]:
        return df.to_dict("records")

    bud = pd.read_csv(prov / "budget.csv", dtype=str, keep_default_na=False)
    bud = bud[bud["资金编码"].isin(fset)]
    bud_fen, _ = baseline.exact_fen(bud["金额"])
    alloc = pd.DataFrame(
        {
            "fund_code": bud["资金编码"],
            "doc_no": bud["指标文号"],
            "unit": bud["预算单位"],
            "kind": bud["类型"],
            "date": [date.fromisoformat(x) for x in bud["下达日期"]],
            "amount_fen": bud_fen.tolist(),
        }
    )
    goals = pd.read_csv(prov / "goals.csv", dtype=str, keep_default_na=False)
    goals = goals[goals["fund_code"].isin(fset)].copy()
    goals["weight"] = [Decimal(x) for x in goals["weight"]]
    goals["position"] = goals.groupby("fund_code").cumcount() + 2
    pay = pd.read_csv(prov / f"payments_{year}.utf8.csv", dtype=str, keep_default_na=False)
    pay = pay[pay["资金编码"].isin(fset) & (pay["支付日期"].str.slice(5, 7).astype(int) < before_month)]
    pfen, _ = baseline.exact_fen(pay["支付金额"])
    payments = pd.DataFrame(
        {
            "fund_code": pay["资金编码"],
            "voucher_no": pay["支付凭证号"],
            "unit": pay["预算单位"],
            "doc_no": pay["指标文号"],
            "amount_fen": pfen.tolist(),
            "pay_date": [date.fromisoformat(x) for x in pay["支付日期"]],
            "kind": pay["业务类型"],
            "econ_class": pay["经济分类"],
            "memo": pay["摘要"],
        }
    )
    ins = pd.read_csv(prov / "inspections.csv", dtype=str, keep_default_na=False)
    ins = ins[ins["fund_code"].isin(fset) & (ins["sample_date"].str.slice(5, 7).astype(int) < before_month)].copy()
    ins["sample_date"] = [date.fromisoformat(x) for x in ins["sample_date"]]
    outs = pd.read_csv(prov / "outputs.csv", dtype=str, keep_default_na=False)
    outs = outs[outs["fund_code"].isin(fset) & (outs["month"].str.slice(5, 7).astype(int) < before_month)].copy()

    def num(v: str) -> Decimal | None:
        try:
            return Decimal(v.rstrip("%"))
        except ArithmeticError:
            return None

    outs["value_num"] = [num(v) for v in outs["value"]]
    files: list[dict] = []
    if register_files:
        for code in funds:
            d = data / "funds" / code
            paths = [d / "goals.csv", d / "budget.csv"]
            for sub in ("payments", "inspections", "outputs"):
                paths += [p for p in sorted((d / sub).glob("*.csv")) if int(p.stem[-2:]) < before_month]
            seen: set[str] = set()
            for p in paths:
                k = {"goals.csv": "goals", "budget.csv": "budget"}.get(p.name, p.parent.name)
                sha = store.sha256_of(p)
                if sha in seen:  # identical bytes (e.g. two header-only months): one source_file row
                    continue
                seen.add(sha)
                files.append(
                    {
                        "fund_code": code,
                        "kind": k,
                        "name": p.relative_to(d).as_posix(),
                        "sha256": sha,
                        "encoding": None,
                        "rows": 0,
                        "archive_path": None,
                        "loaded_at": now,
                    }
                )
    with engine.begin() as conn:
        cfgs = [load_fund_config(data / "funds" / c) for c in funds]
        store.bulk_insert(
            conn,
            store.fund,
            [
                {"code": c.code, "name": c.name, "year": c.year, "department": c.department, "updated_at": now}
                for c in cfgs
            ],
        )
        store.bulk_insert(conn, store.source_file, files)
        store.bulk_insert(conn, store.allocation, recs(alloc))
        store.bulk_insert(conn, store.goal, recs(goals))
        store.bulk_insert(conn, store.payment, recs(payments))
        store.bulk_insert(
            conn,
            store.inspection,
            recs(ins.rename(columns={})[["fund_code", "sample_no", "sample_date", "category", "unit", "result"]]),
        )
        store.bulk_insert(
            conn, store.output, recs(outs[["fund_code", "month", "unit", "name", "value", "value_num", "note"]])
        )
        # ... and closed, as those closes would have recorded (the year-end waits for December).
        store.bulk_insert(
            conn,
            store.month_close,
            [
                {"fund_code": c, "month": f"{year}-{m:02d}", "closed_at": now}
                for c in funds
                for m in range(1, before_month)
                if m <= 12
            ],
        )
    store.dispose_all()
    return {"seed_s": round(time.perf_counter() - t0, 2), "payments": len(payments), "files": len(files)}


def _scratch_funds(data: Path, root: Path, funds: list[str], through_month: int) -> None:
    """Fund dirs holding the files that have arrived by the close of ``through_month``."""
    shutil.rmtree(root, ignore_errors=True)
    for code in funds:
        src, dst = data / "funds" / code, root / code
        for sub in ("payments", "inspections", "outputs"):
            (dst / sub).mkdir(parents=True)
            for p in (src / sub).glob("*.csv"):
                if int(p.stem[-2:]) <= through_month:
                    os.link(p, dst / sub / p.name)
        for name in ("fund.yaml", "goals.csv", "budget.csv"):
            os.link(src / name, dst / name)


# ----------------------------------------------------------------------------- stage d


def _smtp_sink() -> Any:
    from aiosmtpd.controller import Controller

    class Sink:
        count = 0

        async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd API
            Sink.count += 1
            return "250 OK"

    import socket

    with socket.socket() as sock:  # a free loopback port (aiosmtpd cannot take port 0)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ctl = Controller(Sink(), hostname="127.0.0.1", port=port)
    ctl.start()
    return ctl


def _airflow_db(home: Path, env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    ans = subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if ans.returncode != 0:
        raise RuntimeError("airflow db migrate failed: " + ans.stdout[-1500:] + ans.stderr[-1500:])
    return time.perf_counter() - t0


def stage_d(args: argparse.Namespace, rec: Recorder) -> None:
    """A monthly close of N funds through the real DAG (dag.test() on SQLite), N growing."""
    import psutil

    data = Path(args.data)
    man = _manifest(data)
    month = int(args.month)
    year = man["sizes"]["year"]
    work = WORK / "d"
    shutil.rmtree(work, ignore_errors=True)
    home = work / "airflow_home"
    home.mkdir(parents=True)
    env = _airflow_env(home)
    rec.put("airflow_db_migrate_s", round(_airflow_db(home, env), 2))
    smtp = _smtp_sink()
    env["AIRFLOW_CONN_SMTP_DEFAULT"] = (
        f"smtp://127.0.0.1:{smtp.port}?disable_tls=true&disable_ssl=true&from_email=bench%40example.gov.cn"
    )
    sizes = [n for n in (int(x) for x in args.growth.split(",")) if n <= len(man["funds"])]
    out: list[dict] = []
    try:
        for n in sizes:
            funds = man["funds"][:n]
            root = work / f"funds_{n}"
            _scratch_funds(data, root, funds, month)
            db = work / f"store_{n}.db"
            seeded = seed_store(data, f"sqlite:///{db}", funds, month)
            e = dict(
                env,
                BUDGET_MONITOR_FUNDS_DIR=str(root),
                BUDGET_MONITOR_DB_URL=f"sqlite:///{db}",
                BUDGET_MONITOR_HOME=str(work / f"home_{n}"),
            )
            res_file = work / f"d_{n}.json"
            cmd = [
                sys.executable,
                __file__,
                "d_run",
                "--data",
                str(data),
                "--out",
                str(res_file),
                "--month",
                f"{year}-{month:02d}",
                "--funds-per-task",
                str(args.funds_per_task),
            ]
            t0 = time.perf_counter()
            log_path = work / f"d_{n}.log"
            log_fh = log_path.open("wb")  # a file, not a pipe: dag.test() logs a lot
            proc = psutil.Popen(cmd, env=e, cwd=REPO, stdout=log_fh, stderr=subprocess.STDOUT)
            peak = 0
            timed_out = False
            while proc.poll() is None:
                if time.perf_counter() - t0 > args.size_timeout:
                    timed_out = True
                    for p in [*proc.children(recursive=True), proc]:
                        try:
                            p.kill()
                        except psutil.Error:
                            pass
                    proc.wait()
                    break
                try:
                    tree = [proc, *proc.children(recursive=True)]
                    peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
                except psutil.Error:
                    pass
                time.sleep(0.1)
            wall = time.perf_counter() - t0
            log_fh.close()
            log = log_path.read_text(encoding="utf-8", errors="replace")
            child = json.loads(res_file.read_text()) if res_file.is_file() else {"error": log[-3000:]}
            if timed_out:
                # How far it got: mapped load batches finished, close started?
                done = log.count("[DAG TEST] end task task_id=load_funds")
                child = {
                    "error": f"timeout after {args.size_timeout:.0f} s",
                    "timed_out": True,
                    "load_batches_done": done,
                    "batches": -(-n // args.funds_per_task),
                    "close_started": "task_id=close_funds" in log,
                }
            row = {
                "funds": n,
                "wall_s": round(wall, 2),
                "peak_tree_mib": round(peak / 2**20, 1),
                "seed": seeded,
                **child,
            }
            out.append(row)
            rec.put("growth", out)
            if "error" in child:
                break
    finally:
        smtp.stop()
    rec.put("growth", out)
    rec.put("month", f"{year}-{month:02d}")


def stage_d_run(args: argparse.Namespace, rec: Recorder) -> None:
    """Inside the Airflow-configured child: import the DAG file and dag.test() one close."""
    import importlib.util

    t0 = time.perf_counter()
    spec = importlib.util.spec_from_file_location("bench_monthly_dag", REPO / "dags" / "budget_monthly_monitor.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    dag = mod.budget_monthly_monitor()  # the file calls it without keeping the DAG
    rec.put("import_dag_s", round(time.perf_counter() - t0, 2))
    t1 = time.perf_counter()
    dr = dag.test(run_conf={"month": args.month, "fund": "", "funds_per_task": args.funds_per_task})
    rec.put("dag_test_s", round(time.perf_counter() - t1, 2))
    rec.put("state", str(getattr(dr, "state", dr)))
    try:
        from airflow.models import TaskInstance  # noqa: F401

        tis = dr.get_task_instances() if hasattr(dr, "get_task_instances") else []
        spans: dict[str, float] = {}
        states: dict[str, int] = {}
        for ti in tis:
            if ti.start_date and ti.end_date:
                spans[ti.task_id] = round(spans.get(ti.task_id, 0.0) + (ti.end_date - ti.start_date).total_seconds(), 2)
            states[str(ti.state)] = states.get(str(ti.state), 0) + 1
        rec.put("task_seconds", spans)
        rec.put("ti_states", states)
    except Exception as exc:  # noqa: BLE001 - detail only
        rec.put("task_seconds_error", repr(exc))


def stage_d_celery(args: argparse.Namespace, rec: Recorder) -> None:
    """A monthly close of N funds on the native CeleryExecutor stack (tests/distributed/cluster.py):
    api-server, scheduler, dag-processor and ``--workers`` Celery workers of one slot each,
    PostgreSQL store and metadata, Redis broker. ``--code`` is the checkout whose dags/,
    plugins/ and include/ run (default this one), so an older commit runs under the same harness.
    Time: the DAG run's own start to end (REST), and trigger to end."""
    import json as _json
    import uuid

    sys.path.insert(0, str(REPO / "tests" / "distributed"))
    import cluster as C

    code = Path(args.code or REPO).resolve()
    data = Path(args.data)
    man = _manifest(data)
    month = f"{man['sizes']['year']}-{int(args.month):02d}"
    work = WORK / "d_celery"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    rec.put("code", str(code))
    rec.put(
        "commit",
        subprocess.run(
            ["git", "-C", str(code), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip(),
    )
    rec.put("workers", args.workers)
    rec.put("month", month)
    smtp = _smtp_sink()
    out: list[dict] = []
    try:
        for n in [int(x) for x in args.growth.split(",")]:
            funds = man["funds"][:n]
            root = work / f"funds_{n}"
            _scratch_funds(data, root, funds, int(args.month))
            db_name = f"bm_bench_dcel_{uuid.uuid4().hex[:8]}"
            url = fresh_pg_db(db_name)
            seeded = seed_store(data, url, funds, int(args.month))
            extra = {
                "AIRFLOW__CORE__DAGS_FOLDER": str(code / "dags"),
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(code / "plugins"),
                "PYTHONPATH": os.pathsep.join([str(code / "include"), str(code / "plugins")]),
                "AIRFLOW_CONN_BUDGET_MONITOR_DB": _json.dumps(
                    {
                        "conn_type": "postgres",
                        "extra": {"sqlalchemy_url": url.replace("postgresql://", "postgresql+psycopg://", 1)},
                    }
                ),
                "AIRFLOW_CONN_SMTP_DEFAULT": _json.dumps(
                    {
                        "conn_type": "smtp",
                        "host": "127.0.0.1",
                        "port": smtp.port,
                        "extra": {"disable_ssl": True, "disable_tls": True, "from_email": "bench@example.gov.cn"},
                    }
                ),
                "BUDGET_MONITOR_FUNDS_DIR": str(root),
                "BUDGET_MONITOR_HOME": str(work / f"home_{n}"),
                "BUDGET_MONITOR_REPORTS_DIR": str(work / f"reports_{n}"),
                "BUDGET_MONITOR_RETRY_DELAY_SECONDS": "5",
            }
            workers = {f"worker_{chr(97 + k)}": 1 for k in range(args.workers)}
            t_start = time.perf_counter()
            cl = C.start_cluster(work / f"airflow_{n}", extra, workers=workers)
            row: dict[str, Any] = {"funds": n, "seed": seeded, "stack_start_s": round(time.perf_counter() - t_start, 1)}
            try:
                dag_id = "budget_monthly_monitor"
                cl.wait_dags([dag_id])
                t0 = time.perf_counter()
                run_id = cl.trigger(dag_id, {"month": month, "fund": "", "funds_per_task": args.funds_per_task})
                cl.unpause(dag_id)
                state = cl.wait_run(dag_id, run_id, timeout=args.size_timeout)
                row["trigger_to_end_s"] = round(time.perf_counter() - t0, 1)
                dr = cl.dag_run(dag_id, run_id)
                row["state"] = state
                row["run_s"] = round(_span(dr.get("start_date"), dr.get("end_date")), 1)
                tis = cl.task_instances_all(dag_id, run_id)
                row.update(_ti_summary(tis))
            finally:
                C.teardown_cluster(cl)
                from budget_monitor import store

                store.dispose_all()
                drop_pg_db(db_name)
            out.append(row)
            rec.put("growth", out)
            if row.get("state") != "success":
                break
    finally:
        smtp.stop()
    rec.put("growth", out)


def _span(start: str | None, end: str | None) -> float:
    from datetime import datetime

    if not start or not end:
        return float("nan")
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def _ti_summary(tis: list[dict]) -> dict[str, Any]:
    """Per task id: instances, summed seconds, first start to last end, and which worker ran how many."""
    by: dict[str, dict[str, Any]] = {}
    for t in tis:
        d = by.setdefault(t["task_id"], {"n": 0, "busy_s": 0.0, "start": None, "end": None, "hosts": {}, "states": {}})
        d["n"] += 1
        d["states"][t["state"]] = d["states"].get(t["state"], 0) + 1
        if t.get("start_date") and t.get("end_date"):
            d["busy_s"] += _span(t["start_date"], t["end_date"])
            d["start"] = min(d["start"] or t["start_date"], t["start_date"])
            d["end"] = max(d["end"] or t["end_date"], t["end_date"])
        host = t.get("hostname") or "?"
        d["hosts"][host] = d["hosts"].get(host, 0) + 1
    return {
        "tasks": {
            k: {
                "n": v["n"],
                "busy_s": round(v["busy_s"], 1),
                "span_s": round(_span(v["start"], v["end"]), 1),
                "hosts": v["hosts"],
                "states": v["states"],
            }
            for k, v in by.items()
        }
    }


# ----------------------------------------------------------------------------- stage e


def _year_end_worker(job: tuple[list[str], int, str, str]) -> dict:
    fund_dirs, year, out_root, db_url = job
    t0 = time.perf_counter()
    import resource

    from budget_monitor import pipeline

    imp = time.perf_counter() - t0
    per: list[float] = []
    errors: list[str] = []
    for d in fund_dirs:
        t = time.perf_counter()
        try:
            pipeline.run_year_end(Path(d), year, Path(out_root) / Path(d).name, db_url, None)
        except Exception as exc:  # noqa: BLE001 - counted and reported
            errors.append(f"{Path(d).name}: {exc!r}"[:300])
        per.append(time.perf_counter() - t)
    return {
        "import_s": imp,
        "per_fund": per,
        "errors": errors,
        "pid": os.getpid(),
        "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def stage_e(args: argparse.Namespace, rec: Recorder) -> None:
    """Year-end of every fund on a full-year store, spread over ``--workers`` processes
    (fresh interpreters: a spawn pool; one interleaved chunk per worker, so each
    worker's import time is measured once)."""
    import multiprocessing
    import statistics
    from concurrent.futures import ProcessPoolExecutor

    data = Path(args.data)
    man = _manifest(data)
    year = man["sizes"]["year"]
    funds = man["funds"][: args.limit or None]
    work = WORK / "e"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    root = work / "funds"
    _scratch_funds(data, root, funds, 12)
    db_url = f"sqlite:///{work / 'store.db'}"
    with rec.step("seed"):
        rec.put("seed", seed_store(data, db_url, funds, 13, register_files=False))
    os.environ["BUDGET_MONITOR_HOME"] = str(work / "home")
    dirs = [str(root / c) for c in funds]
    workers = args.workers
    chunks = [dirs[i::workers] for i in range(workers)]  # interleaved: big and small funds mixed
    import threading

    import psutil

    me = psutil.Process()
    tree_peak = [0]
    stop = threading.Event()

    def sample() -> None:  # the year-end phase only (the seeding above is bench set-up)
        while not stop.is_set():
            total = 0
            for p in [me, *me.children(recursive=True)]:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            tree_peak[0] = max(tree_peak[0], total)
            stop.wait(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    import stages  # this file as an importable module: workers resolve the function by module name

    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = list(pool.map(stages._year_end_worker, [(c, year, str(work / "out"), db_url) for c in chunks]))
    wall = time.perf_counter() - t0
    stop.set()
    sampler.join()
    rec.put("yearend_tree_peak_mib", round(tree_peak[0] / 2**20, 1))
    per = [x for r in results for x in r["per_fund"]]
    errors = [e for r in results for e in r["errors"]]
    rec.put("funds", len(funds))
    rec.put("workers", workers)
    rec.put("wall_s", round(wall, 2))
    rec.put("per_fund_mean_s", round(statistics.mean(per), 3))
    rec.put("per_fund_median_s", round(statistics.median(per), 3))
    rec.put("per_fund_p95_s", round(sorted(per)[int(0.95 * (len(per) - 1))], 3))
    rec.put("per_fund_max_s", round(max(per), 3))
    rec.put("worker_import_s", [round(r["import_s"], 2) for r in results])
    rec.put("worker_busy_s", [round(sum(r["per_fund"]), 1) for r in results])
    # (no per-worker ru_maxrss: Linux keeps the parent's high-water mark across fork+exec)
    rec.put("cpu_utilisation", round(sum(per) / (wall * workers), 2))
    rec.put("errors", len(errors))
    rec.put("error_samples", errors[:5])
    outs = list((work / "out").glob("*/self_evaluation.json"))
    rec.put("self_evaluation_files", len(outs))


# ----------------------------------------------------------------------------- stage g


def _stream_data(data: Path, rows: int) -> Path:
    """Stage g's fund directory (bench/generate.py stream_fund), generated once per size."""
    import generate

    fund = data / f"stream_{rows}"
    mark = fund / ".generated"
    want = json.dumps({"rows": rows, "version": generate.VERSION})
    if not mark.is_file() or mark.read_text() != want:
        # In a child: generating takes ~1 GB, which this stage's process tree must not show.
        code = (
            "import sys; sys.path.insert(0, sys.argv[1]); import generate; from pathlib import Path; "
            "generate.stream_fund(Path(sys.argv[2]), int(sys.argv[3]))"
        )
        subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent), str(fund), str(rows)], check=True)
        mark.write_text(want)
    return fund


def _peak_rss_mib() -> float:
    """This process's peak RSS since it started (VmHWM): unlike ru_maxrss, not the
    high-water mark a child inherits from its parent across fork + exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def stage_g(args: argparse.Namespace, rec: Recorder) -> None:
    """One large payments CSV (issue #13 item 11: 200 MB, 1.6M rows) through
    ``pipeline.load_month`` in a fresh process each: streamed in chunks (the
    default above BUDGET_MONITOR_STREAM_BYTES) vs read whole (the threshold out
    of reach, the code before), on SQLite and PostgreSQL; and a bare pandas
    ``read_csv`` of the same file. Each child's peak RSS is its own VmHWM
    (imports included: what the process needs for that file; ru_maxrss would
    carry the parent's high-water mark over fork + exec)."""
    from common import pg_available

    data = Path(args.data)
    rows = args.rows or 1_600_000
    fund = _stream_data(data, rows)
    csv_path = next((fund / "payments").glob("*.csv"))
    rec.put("rows", rows)
    rec.put("file_mib", round(csv_path.stat().st_size / 2**20, 1))
    rec.put("file_mb", round(csv_path.stat().st_size / 1e6, 1))
    rec.put("encoding", "gbk")
    stores = ["sqlite", *(["postgres"] if pg_available() else [])]
    work = WORK / "g"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    # A small file streams only under a lowered threshold (the smoke run).
    threshold = None if csv_path.stat().st_size > (32 << 20) else "1048576"
    plan = [("bare", "none"), *[(mode, st) for st in stores for mode in ("stream", "whole")], ("bare", "none")]
    runs: list[dict[str, Any]] = []
    for n, (mode, st) in enumerate(plan):
        out = work / f"g_{n}_{mode}_{st}.json"
        cmd = [sys.executable, __file__, "g_run", "--data", str(fund), "--out", str(out), "--mode", mode, "--store", st]
        env = dict(os.environ)
        if threshold and mode == "stream":
            env["BUDGET_MONITOR_STREAM_BYTES"] = threshold
        ans = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=args.size_timeout)
        child = json.loads(out.read_text()) if out.is_file() else {"error": ans.stderr[-3000:]}
        if ans.returncode != 0 and "error" not in child:
            child["error"] = ans.stderr[-3000:]
        child.update({"mode": mode, "store": st})
        runs.append(child)
        rec.put("runs", runs)
        if "error" in child:
            raise RuntimeError(f"g_run {mode}/{st}: {child['error'][-500:]}")
    bare = [r for r in runs if r["mode"] == "bare"]
    rec.put("bare_read_s", min(r["read_s"] for r in bare))
    rec.put("bare_peak_rss_mib", max(r["peak_rss_mib"] for r in bare))
    for st in stores:
        by = {r["mode"]: r for r in runs if r["store"] == st}
        s, w = by["stream"], by["whole"]
        rec.put(
            st,
            {
                "stream_load_s": s["load_s"],
                "whole_load_s": w["load_s"],
                "stream_peak_rss_mib": s["peak_rss_mib"],
                "whole_peak_rss_mib": w["peak_rss_mib"],
                "stream_load_peak_mib": s["load_peak_mib"],
                "whole_load_peak_mib": w["load_peak_mib"],
                "after_imports_mib": s["after_imports_mib"],
                "rss_ratio": round(s["peak_rss_mib"] / w["peak_rss_mib"], 2),
                "time_vs_whole": round(s["load_s"] / w["load_s"], 2),
                "time_vs_bare_read": round(s["load_s"] / rec.data["bare_read_s"], 1),
                "whole_time_vs_bare_read": round(w["load_s"] / rec.data["bare_read_s"], 1),
                "files": s["files"],
                "stream_breakdown": s.get("breakdown"),
                "whole_breakdown": w.get("breakdown"),
            },
        )


def stage_g_run(args: argparse.Namespace, rec: Recorder) -> None:
    """Inside a fresh process: one load_month of stage g's fund (or the bare read)."""
    try:
        _stage_g_run(args, rec)
    finally:
        rec.put("peak_rss_mib", _peak_rss_mib())


def _stage_g_run(args: argparse.Namespace, rec: Recorder) -> None:
    fund = Path(args.data)
    csv_path = next((fund / "payments").glob("*.csv"))
    _warm(csv_path)
    if args.mode == "bare":
        import pandas as pd

        rec.put("after_imports_mib", _peak_rss_mib())
        t0 = time.perf_counter()
        frame = pd.read_csv(csv_path, dtype=str, keep_default_na=False, encoding="gb18030")
        rec.put("read_s", round(time.perf_counter() - t0, 3))
        rec.put("rows", len(frame))
        return
    if args.mode == "whole":
        os.environ["BUDGET_MONITOR_STREAM_BYTES"] = str(1 << 50)  # every file read whole: the code before
    work = WORK / f"g_{args.mode}_{args.store}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    os.environ["BUDGET_MONITOR_HOME"] = str(work / "home")
    from budget_monitor import ingest, pipeline, store, validate

    import great_expectations  # noqa: F401 - a once-per-process cost, as in stage a

    validate.gx_runtime()
    name = f"bench_g_{args.mode}"
    url = fresh_pg_db(name) if args.store == "postgres" else f"sqlite:///{work / 'store.db'}"
    fdir = work / "fund"
    shutil.copytree(fund, fdir, copy_function=os.link)
    store.open_store(url)
    rec.put("after_imports_mib", _peak_rss_mib())
    rec.put("streamed", ingest.is_streamed(next((fdir / "payments").glob("*.csv")), "payments"))
    tm = _pipeline_timings()
    tm.wrap(ingest, "_typed", "ingest._typed (text -> typed columns)")
    tm.wrap(validate.ChunkedFile, "first_pass_context", "validate.ChunkedFile.first_pass_context (key hashes)")
    tm.wrap(pipeline, "_load_chunk", "pipeline._load_chunk (rows -> dicts -> store)")
    tm.wrap(pipeline, "_stream_exact", "pipeline._stream_exact (a file the single pass could not accept)")
    tm.wrap(store.ChunkedLoad, "add", "store.ChunkedLoad.add")
    try:
        rec.rss.reset()
        t0 = time.perf_counter()
        res = pipeline.load_month(fdir, "2021-12", url)
        rec.put("load_s", round(time.perf_counter() - t0, 3))
        rec.put("load_peak_mib", rec.rss.peak_mib())
        rec.put("files", [f"{f.kind}:{f.status}:{f.rows}" for f in res.files])
        rec.put("breakdown", tm.as_dict())
    finally:
        _unwrap_all()
        store.dispose_all()
        if args.store == "postgres":
            drop_pg_db(name)


# ----------------------------------------------------------------------------- main

STAGES = {
    "a_sqlite": stage_a,
    "a_postgres": stage_a,
    "a_duckdb": stage_a_duckdb,
    "b": stage_b,
    "c": stage_c,
    "d": stage_d,
    "d_run": stage_d_run,
    "d_celery": stage_d_celery,
    "e": stage_e,
    "g": stage_g,
    "g_run": stage_g_run,
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("stage", choices=sorted(STAGES))
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--month", default="6")
    p.add_argument("--growth", default="20,200,2000")
    p.add_argument("--funds-per-task", type=int, default=100)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--size-timeout", type=float, default=1800, help="stage d: kill a close after this")
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--code", default="", help="stage d_celery: the checkout to run (default this one)")
    p.add_argument("--rows", type=int, default=0, help="stage g: rows of the large file (default 1.6M)")
    p.add_argument("--mode", choices=("stream", "whole", "bare"), default="stream", help="stage g_run")
    p.add_argument("--store", choices=("sqlite", "postgres", "none"), default="sqlite", help="stage g_run")
    args = p.parse_args(argv)
    rec = Recorder()
    status = 0
    try:
        STAGES[args.stage](args, rec)
    except Exception as exc:  # noqa: BLE001 - the harness reports it in the table
        rec.put("error", f"{type(exc).__name__}: {exc}"[:2000])
        rec.put("traceback", traceback.format_exc()[-4000:])
        status = 1
    dump(Path(args.out), rec.finish())
    return status


if __name__ == "__main__":
    sys.exit(main())
