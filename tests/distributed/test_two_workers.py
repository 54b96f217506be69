"""Two Celery workers share the monthly close (issue #16 item 5).

The close is a mapped task per batch of funds, so any worker can run any
batch's close. Shown deterministically with two workers of one slot each
(``worker_a``, ``worker_b``: distinct Celery node names, which are also the
task instances' ``hostname``), two funds and ``funds_per_task=1``:

1. the test holds the second fund's lock, so batch 1's load waits on one
   worker while batch 0 loads and closes on the other (its only slot is busy);
2. that worker then stops taking tasks (Celery ``cancel_consumer``) and the
   lock is released: batch 1's close can only go to the other worker.
"""

from __future__ import annotations

import time

import cluster as C

MONTHLY = "budget_monthly_monitor"
SECOND_FUND = "JM-2021-YPJG-B"  # conftest: the copy of the example fund, batch 1
CELERY_WORKERS = {"worker_a": 1, "worker_b": 1}
# Batch 1's load waits for the lock the test holds; it must not give up meanwhile.
CLUSTER_ENV = {"BUDGET_MONITOR_LOCK_WAIT_S": "600"}
QUEUE = "default"  # [operators] default_queue: what every worker consumes


def _ti(cl: C.Cluster, run_id: str, task_id: str, map_index: int) -> dict | None:
    for t in cl.task_instances(MONTHLY, run_id):
        if t["task_id"] == task_id and t["map_index"] == map_index:
            return t
    return None


def _wait_ti(cl: C.Cluster, run_id: str, task_id: str, map_index: int, state: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        cl.assert_alive()
        t = _ti(cl, run_id, task_id, map_index)
        if t and t["state"] == state:
            return t
        assert t is None or t["state"] not in ("failed", "upstream_failed", "skipped"), t
        assert time.monotonic() < deadline, cl.task_instances(MONTHLY, run_id)
        time.sleep(0.5)


def test_both_workers_close_funds(stack, data_db):
    from budget_monitor import store
    from budget_monitor.locks import fund_lock

    cl = stack["cluster"]
    nodes = set(cl.workers.values())
    assert len(nodes) == 2
    cl.wait_dags([MONTHLY])
    cl.unpause(MONTHLY)
    control = cl.celery_control()
    engine = store.open_store(data_db["url"])

    with fund_lock(engine, SECOND_FUND, wait_s=30):
        run_id = cl.trigger(MONTHLY, {"month": "2021-06", "funds_per_task": 1})
        first = _wait_ti(cl, run_id, "close_funds", 0, "success")
        waiting = _ti(cl, run_id, "load_funds", 1)
        assert waiting and waiting["state"] == "running", waiting
        # Batch 0 closed on one worker while batch 1's load held the other's only slot.
        assert first["hostname"] in nodes and waiting["hostname"] in nodes - {first["hostname"]}
        replies = control.cancel_consumer(QUEUE, destination=[first["hostname"]], reply=True, timeout=10)
        assert replies, "the worker did not answer cancel_consumer"
    try:
        assert cl.wait_run(MONTHLY, run_id, timeout=600) == "success", cl.task_instances(MONTHLY, run_id)
    finally:
        control.add_consumer(QUEUE, destination=[first["hostname"]], reply=True, timeout=10)

    closes = {t["map_index"]: t for t in cl.task_instances(MONTHLY, run_id) if t["task_id"] == "close_funds"}
    assert sorted(closes) == [0, 1]
    assert {t["hostname"] for t in closes.values()} == nodes  # two different workers closed funds
    for i, fund in enumerate(("jiangmen-2021", "jiangmen-2021-b")):
        log = cl.task_log(MONTHLY, run_id, "close_funds", closes[i]["try_number"], map_index=i)
        assert f"{fund} 2021-06 closed" in log, log[-3000:]
    # Each worker's own log shows the close it executed.
    for name, node in cl.workers.items():
        text = cl.log_path(name).read_text(errors="replace")
        ran = [
            ln
            for ln in text.splitlines()
            if "Executing workload in Celery" in ln and f"run_id='{run_id}'" in ln and "task_id='close_funds'" in ln
        ]
        assert len(ran) == 1, (name, node, ran)
