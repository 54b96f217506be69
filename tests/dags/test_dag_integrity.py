"""DAG integrity: every DAG file imports, and every DAG carries what operations need.

The astro-cli template's test, plus: owner, doc_md, the expected schedule,
Params and the asset wiring between the two budget DAGs. Parse time is a
benchmark concern (bench/), not a timed assertion here.
"""

from __future__ import annotations

import ast
import copy
from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[2] / "dags"
HEAVY = ("pandas", "great_expectations", "matplotlib", "sqlalchemy", "budget_monitor", "docxtpl", "duckdb")


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}, dagbag.import_errors
    assert {"budget_monthly_monitor", "budget_year_end_report"} <= set(dagbag.dag_ids)


def test_every_dag_has_tags_owner_retries_and_docs(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, f"{dag_id} has no tags"
        assert dag.doc_md and dag.doc_md.strip(), f"{dag_id} has no doc_md"
        for t in dag.tasks:
            assert t.retries >= 1, f"{dag_id}.{t.task_id} has no retries"
            assert t.owner and t.owner != "airflow", f"{dag_id}.{t.task_id} has no owner"
            assert t.on_failure_callback, f"{dag_id}.{t.task_id} has no failure notifier"


@pytest.mark.parametrize("path", sorted(DAGS.glob("*.py")), ids=lambda p: p.name)
def test_dag_files_import_nothing_heavy_at_top_level(path):
    """Heavy libraries only inside task functions: the DAG processor parses often."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:  # module level only; function bodies may import anything
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        for name in names:
            top = name.split(".")[0]
            assert top not in HEAVY, f"{path.name} imports {name} at top level"


def test_monthly_schedule_params_and_asset(dagbag):
    dag = dagbag.dags["budget_monthly_monitor"]
    assert dag.timetable.expression == "0 6 5 * *"
    assert str(getattr(dag.timetable.timezone, "name", dag.timetable.timezone)) == "Asia/Shanghai"
    assert dag.catchup is False
    assert dag.start_date.tzinfo is not None
    assert {"month", "fund", "funds_per_task"} <= set(dag.params.keys())
    outlets = {o.uri for t in dag.tasks for o in t.outlets}
    assert "budget_monitor://monthly_close" in outlets
    assert dag.get_task("load_funds").trigger_rule == "all_success"
    assert dag.get_task("close_funds").trigger_rule == "all_done"


def test_close_is_mapped_per_batch_after_its_own_load(dagbag):
    """The close is a mapped task per batch in the same mapped group as the load
    (close i waits for load i only), in the funds' pool; one send_alerts after all."""
    dag = dagbag.dags["budget_monthly_monitor"]
    load, close = dag.get_task("load_funds"), dag.get_task("close_funds")
    group = close.get_closest_mapped_task_group()
    assert group is not None and load.get_closest_mapped_task_group() is group
    assert close.upstream_task_ids >= {"load_funds"} and close.pool == load.pool
    send = dag.get_task("send_alerts")
    assert {"load_funds", "close_funds"} <= send.upstream_task_ids
    assert not send.get_closest_mapped_task_group()


def test_data_docs_are_built_per_batch_after_its_load_before_the_mail(dagbag):
    """build_data_docs renders the batch's pages after its load whatever its outcome
    (a rejection is when they are read), before the notices linking them are sent;
    a page that fails to render does not hold back the close's publication."""
    dag = dagbag.dags["budget_monthly_monitor"]
    docs = dag.get_task("build_data_docs")
    assert docs.get_closest_mapped_task_group() is dag.get_task("load_funds").get_closest_mapped_task_group()
    assert "load_funds" in docs.upstream_task_ids and docs.trigger_rule == "all_done"
    assert "build_data_docs" in dag.get_task("send_alerts").upstream_task_ids
    assert "build_data_docs" not in dag.get_task("publish_close").upstream_task_ids


def test_publish_close_waits_for_load_and_close_not_for_mail(dagbag):
    """A rejected load blocks the monthly_close asset (December: the year end); an SMTP
    hiccup in send_alerts does not (its mails stay pending in the outbox)."""
    dag = dagbag.dags["budget_monthly_monitor"]
    publish = dag.get_task("publish_close")
    assert publish.trigger_rule == "all_success"
    assert {"load_funds", "close_funds"} <= publish.upstream_task_ids
    assert "send_alerts" not in publish.get_flat_relative_ids(upstream=True)
    assert dag.get_task("send_alerts").trigger_rule == "all_done"


def test_month_param_rejects_bad_text(dagbag):
    from airflow.sdk.exceptions import ParamValidationError

    params = copy.deepcopy(dagbag.dags["budget_monthly_monitor"].params)
    params.validate()  # defaults are valid
    params["month"] = "2021-06"
    with pytest.raises(ParamValidationError):
        params["month"] = "2021-6"


def test_year_end_is_scheduled_on_the_monthly_close(dagbag):
    dag = dagbag.dags["budget_year_end_report"]
    assets = list(dag.timetable.asset_condition.objects)
    assert [a.uri for a in assets] == ["budget_monitor://monthly_close"]
    assert "year" in dag.params


def test_previous_month_in_shanghai_time():
    """The 5th-of-month run closes the month before; UTC midnight-crossing does not shift it."""
    import pendulum
    from budget_monitor_airflow.periods import month_to_process

    # 2022-01-04T22:00Z is 2022-01-05 06:00 in Shanghai: the December close.
    ctx = {"params": {"month": ""}, "logical_date": pendulum.datetime(2022, 1, 4, 22, tz="UTC")}
    assert month_to_process(ctx) == "2021-12"
    ctx["params"]["month"] = "2021-06"
    assert month_to_process(ctx) == "2021-06"
