"""The main job: the example fund through a year of monthly DAG runs, then the year end.

Runs the real Airflow 3 DAGs in-process with ``dag.test()`` on embedded
defaults: Airflow metadata and the budget store in SQLite files under
``var/demo/``, the example fund copied into ``var/demo/inbox/``, and a local
SMTP server (aiosmtpd) that writes every mail it receives to
``var/demo/mail/*.eml``. Each run starts from a clean ``var/demo``.

    ./run demo            # or: .venv/bin/python scripts/demo.py [--months 1-12]
"""

from __future__ import annotations

import argparse
import email
import email.policy
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HOME = REPO / "var" / "demo"
EXAMPLE = REPO / "examples" / "jiangmen-2021"


class MaildirSink:
    """aiosmtpd handler writing each received message to ``<dir>/NNN.eml``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.count = 0

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd hook name
        self.count += 1
        (self.folder / f"{self.count:03d}.eml").write_bytes(envelope.content)
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _configure(port: int) -> dict[str, str]:
    sys.path.insert(0, str(REPO / "plugins"))
    from budget_monitor_airflow.settings import local_smtp_connection, standalone_airflow_env

    env = {
        **standalone_airflow_env(HOME / "airflow"),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "BUDGET_MONITOR_HOME": str(HOME),
        "BUDGET_MONITOR_FUNDS_DIR": str(HOME / "inbox"),
        "BUDGET_MONITOR_DB_URL": f"sqlite:///{HOME / 'budget_monitor.db'}",
        "BUDGET_MONITOR_REPORTS_DIR": str(HOME / "reports"),
        "AIRFLOW_CONN_SMTP_DEFAULT": local_smtp_connection(port, "budget-monitor@localhost"),
    }
    # Third-party deprecation chatter is not for the finance office's console.
    env["PYTHONWARNINGS"] = "ignore::DeprecationWarning"
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    for key in [k for k in os.environ if k.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))]:
        del os.environ[key]
    os.environ.update(env)
    return env


# What the demo's units say when asked why a quarter lagged (核实反馈):
# (quarter, first two characters of the unit) -> cause, measures.
DEMO_ANSWERS = {
    (2, "台山"): ("执法检查装备采购项目招标延期，合同于7月签订", "7月完成合同签订，8月底前完成验收付款"),
    (2, "开平"): ("执法检查装备采购项目招标延期，合同于7月签订", "7月完成合同签订，8月底前完成验收付款"),
    (2, "恩平"): ("抽检经费按季度结算，第二季度费用在7月支付", "改为按月结算抽检经费"),
    (3, "台山"): ("药品监管干部培训因疫情防控要求推迟举办", "培训调整至10月集中举办"),
    (3, "恩平"): ("执法装备到货延迟，验收付款顺延", "督促供应商10月底前到货并完成验收付款"),
}


def _answer(detail: dict):
    """The demo's people: units answer their 核实反馈 requests; the approver approves."""
    subject = detail["subject"]
    if subject.startswith("【审批】"):
        return ("approver", "user", ["批准"], {"comment": "同意"})
    unit = subject.split("】", 1)[1].split(" ", 1)[0]
    quarter = next(q for q, name in enumerate(("第一季度", "第二季度", "第三季度", "第四季度"), 1) if name in subject)
    cause, measures = DEMO_ANSWERS.get((quarter, unit[:2]), ("部分项目启动较晚", "加快项目实施和资金支付进度"))
    # The unit's account in contacts.csv answers (the request is assigned to it);
    # a unit without a contact is answered by the finance office.
    from budget_monitor.contacts import accounts

    user = next(iter(accounts(HOME / "inbox", unit)), "caiwu")
    return (user, "user", ["提交"], {"cause": cause, "measures": measures})


def _months(spec: str) -> list[int]:
    first, _, last = spec.partition("-")
    return list(range(int(first), int(last or first) + 1))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--months", default="1-12", help="months to close, e.g. 1-12 or 6")
    args = ap.parse_args(argv)

    shutil.rmtree(HOME, ignore_errors=True)
    (HOME / "mail").mkdir(parents=True)
    (HOME / "airflow").mkdir(parents=True)
    shutil.copytree(EXAMPLE, HOME / "inbox" / EXAMPLE.name)
    # The department's contacts (who gets each unit's alerts, who answers for it).
    shutil.copy(EXAMPLE.parent / "contacts.csv", HOME / "inbox" / "contacts.csv")

    from aiosmtpd.controller import Controller

    port = _free_port()
    sink = MaildirSink(HOME / "mail")
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    _configure(port)
    started = time.monotonic()
    try:
        print("准备 Airflow 元数据库（airflow db migrate）…", flush=True)
        subprocess.run([str(Path(sys.executable).parent / "airflow"), "db", "migrate"], check=True, capture_output=True)

        import pendulum
        from airflow.dag_processing.dagbag import DagBag

        bag = DagBag(dag_folder=str(REPO / "dags"))
        if bag.import_errors:
            print(f"DAG import errors: {bag.import_errors}", file=sys.stderr)
            return 1
        monthly = bag.get_dag("budget_monthly_monitor")
        year_end = bag.get_dag("budget_year_end_report")
        unit_feedback = bag.get_dag("budget_unit_feedback")
        from budget_monitor_airflow.responder import in_process

        # The people of the loop, played by the demo through Airflow's REST API:
        # each lagging unit answers its quarter-end request, the finance office's
        # approver signs off the year-end draft.
        responder, client = in_process(_answer)
        responder.start()

        from budget_monitor import store
        from budget_monitor.config import load_fund_config
        from budget_monitor.pipeline import compute

        cfg = load_fund_config(HOME / "inbox" / EXAMPLE.name)
        failed = 0
        for m in _months(args.months):
            month = f"{cfg.year}-{m:02d}"
            # The run that closes month m is scheduled on the 5th of month m+1.
            when = pendulum.datetime(cfg.year, m, 5, 6, tz="Asia/Shanghai").add(months=1)
            dr = monthly.test(logical_date=when, run_conf={"month": month})
            figures = compute(store.open_store(os.environ["BUDGET_MONITOR_DB_URL"]), cfg, m)
            f = figures.fund.month(m)
            lag = "、".join(f"Q{q}" for q in figures.fund.lagging_quarters) or "—"
            print(
                f"{month}  DAG {dr.state:<8} 执行率 {f.rate_2dp:>6}%  序时进度 {f.pace_2dp:>6}%"
                f"  差 {f.gap_2dp:>7}  落后季度 {lag}",
                flush=True,
            )
            failed += str(dr.state) != "success"
            if m % 3 == 0:
                before = len(responder.answered)
                dr = unit_feedback.test(logical_date=when, run_conf={"month": month})
                for a in responder.answered[before:]:
                    print(f"          核实反馈 {a['user']}：{a['params'].get('cause', '')}", flush=True)
                failed += str(dr.state) != "success"
        if 12 in _months(args.months):
            before = len(responder.answered)
            dr = year_end.test(run_conf={"year": cfg.year})
            for a in responder.answered[before:]:
                print(f"year end  审批 {a['user']}：{a['options'][0]}（{a['subject']}）", flush=True)
            print(f"year end  DAG {dr.state}", flush=True)
            failed += str(dr.state) != "success"
        time.sleep(1)  # let the SMTP server finish writing the last message
    finally:
        if "responder" in locals():
            responder.stop()
            client.__exit__(None, None, None)
        controller.stop()

    print()
    mails = sorted((HOME / "mail").glob("*.eml"))
    print(f"收到邮件 {len(mails)} 封（{HOME / 'mail'}）：")
    per_address: dict[str, int] = {}
    for path in mails:
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        to = [a.addr_spec for h in ("To", "Cc") for a in (msg[h].addresses if msg[h] else ())]
        for address in to:
            per_address[address] = per_address.get(address, 0) + 1
        print(f"  {path.name}  {msg['Subject']}  → {', '.join(to)}")
    # fund.yaml alerts.mode: digest (the default): one mail per recipient per month
    # close, where one mail per alert was 50 for the year (49 alerts + the report);
    # plus one 核实反馈 mail per lagging unit with a contact and quarter (5: caiwu@
    # and yaojianke@ 12 each, 台山 14, 开平 11).
    print("\n每个收件人收到的邮件（月度汇总 + 年度自评报告 + 核实反馈通知；预警逐条发送时为 50 封）：")
    for address, n in sorted(per_address.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"  {address}  {n} 封")
    reports = HOME / "reports"
    if reports.exists():
        print(f"\n自评报告输出目录：{reports}")
        for p in sorted(reports.rglob("*")):
            if p.is_file():
                print(f"  {p.relative_to(reports)}")
        for p in reports.rglob("self_evaluation.json"):
            ev = json.loads(p.read_text(encoding="utf-8"))
            print(
                f"\n{ev['fund']['name']}：执行率 {ev['budget']['execution_rate']}%，"
                f"自评得分 {ev['total_score']:g} 分，等级 {ev['grade']}；存在问题：{ev['problems'][0]}"
            )
    print(
        "\n仪表盘：启动 Airflow（.venv/bin/airflow api-server，AIRFLOW_HOME="
        f"{HOME / 'airflow'}）后访问 http://localhost:8080/budget-dashboard/ ；"
        "待办的核实反馈和报告审批在 Airflow 的 Required Actions（待办事项）页面。"
    )
    print(f"\n用时 {time.monotonic() - started:.0f} 秒；失败的 DAG 运行：{failed}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
