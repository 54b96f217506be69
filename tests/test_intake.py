"""The intake wing: one table of data kinds, the table of sources, no import of the pipeline."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from budget_monitor import store, tables
from budget_monitor.config import SOURCE_KINDS, FundConfigError, load_fund_config
from budget_monitor.intake import FACT_KINDS, KINDS, LOAD_ORDER, Endpoint, Pulled, Source, SourceError
from budget_monitor.intake.files import FileDrop
from budget_monitor.intake.registry import SOURCES, pull_funds, source_for
from budget_monitor.intake.sql import SqlSource
from budget_monitor.intake.treasury import TreasurySource

REPO = Path(__file__).resolve().parents[1]
INTAKE = REPO / "include" / "budget_monitor" / "intake"
EXAMPLE = REPO / "examples" / "jiangmen-2021"


def test_the_kinds_table_drives_the_store_and_the_column_specs() -> None:
    assert LOAD_ORDER == ("goals", "budget", "payments", "inspections", "outputs")
    assert tables.KINDS == LOAD_ORDER and set(store.FACTS) == set(LOAD_ORDER)
    assert store.SNAPSHOT_KINDS == {k.name for k in KINDS if k.snapshot}
    # The store's keys and audited values, read off the schema, are what they were written as.
    assert {k: (s.table.name, s.key, s.values) for k, s in store.FACTS.items()} == {
        "payments": (
            "payment",
            ("voucher_no",),
            ("unit", "doc_no", "amount_fen", "pay_date", "kind", "econ_class", "memo"),
        ),
        "inspections": ("inspection", ("sample_no",), ("sample_date", "category", "unit", "result")),
        "outputs": ("output", ("month", "unit", "name"), ("value", "value_num", "note")),
        "budget": ("allocation", ("doc_no", "unit", "kind"), ("date", "amount_fen")),
        "goals": ("goal", ("name",), ("level1", "level2", "target", "weight", "position")),
    }
    for kind in KINDS:  # every date column is a column of the kind's table spec
        if kind.date_column:
            assert tables.spec_of(kind.name, kind.date_column).type in ("date", "month")


def test_every_source_kind_of_fund_yaml_has_a_row_and_every_row_a_settings_class() -> None:
    assert tuple(SOURCES) == SOURCE_KINDS
    for row in SOURCES.values():
        assert row.label_zh


def test_nothing_in_intake_imports_the_pipeline() -> None:
    for path in INTAKE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
            assert not any(n.startswith("budget_monitor.pipeline") for n in names), path.name
    # Nor through anything it imports: a pull loads no pipeline module.
    code = (
        "import sys, budget_monitor.intake.registry, budget_monitor.sources, budget_monitor.ingest;"
        "print([m for m in sys.modules if m.startswith('budget_monitor.pipeline')])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_old_names_still_work() -> None:
    import budget_monitor.ingest as facade
    import budget_monitor.intake.ingest as moved
    from budget_monitor import sources

    assert facade is moved  # one module: patching budget_monitor.ingest patches what the pipeline calls
    assert sources.FACT_KINDS == FACT_KINDS and sources.SNAPSHOT_FILES == ("goals", "budget")
    assert sources.SqlSource is SqlSource


def _fund(tmp_path: Path, name: str, source: dict | None = None, code: str | None = None) -> Path:
    d = tmp_path / name
    d.mkdir()
    data = yaml.safe_load((EXAMPLE / "fund.yaml").read_text(encoding="utf-8"))
    data["code"] = code or name
    if source is not None:
        data["source"] = source
    (d / "fund.yaml").write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return d


def test_source_for_reads_fund_yaml_and_the_deployment_default(tmp_path: Path, monkeypatch) -> None:
    plain = load_fund_config(_fund(tmp_path, "plain"))
    assert isinstance(source_for(plain), FileDrop) and isinstance(source_for(plain), Source)
    from budget_monitor.config import SqlSourceSettings

    # A fund without `source` takes the deployment's default (the DAG's SQL connection).
    monkeypatch.setenv("BUDGET_MONITOR_SOURCE_URL", "sqlite:///x.db")
    assert isinstance(source_for(plain, default=SqlSourceSettings(kind="sql")), SqlSource)
    http = load_fund_config(_fund(tmp_path, "http", {"kind": "http", "url": "http://127.0.0.1:1/t"}))
    assert isinstance(source_for(http), TreasurySource)
    sql = load_fund_config(_fund(tmp_path, "sql", {"kind": "sql", "conn_id": "treasury_db"}))
    monkeypatch.delenv("BUDGET_MONITOR_SOURCE_URL")
    with pytest.raises(SourceError, match="sql：数据库来源未配置：请设置 Airflow 连接 treasury_db"):
        source_for(sql)
    found = source_for(sql, {"treasury_db": Endpoint("sqlite:///y.db")}.get)
    assert isinstance(found, SqlSource) and found.url == "sqlite:///y.db"


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ({"kind": "ftp"}, "来源类型 kind 应为 files、sql、http 之一"),
        ({"kind": "http", "url": "http://user:pw@treasury/x"}, "接口地址中不能包含用户名或密码"),
        ({"kind": "http", "kinds": ["budget"]}, "数据种类 'budget' 无效"),
        ({"kind": "sql", "password": "x"}, "source.sql.password：未知字段"),
    ],
)
def test_bad_source_settings_are_named_in_chinese(tmp_path: Path, source: dict, words: str) -> None:
    with pytest.raises(FundConfigError, match=words):
        load_fund_config(_fund(tmp_path, "f", source))


def test_one_funds_failing_source_does_not_stop_the_others(tmp_path: Path) -> None:
    good = _fund(tmp_path, "a-good")
    broken_yaml = tmp_path / "b-broken"
    broken_yaml.mkdir()
    (broken_yaml / "fund.yaml").write_text("code: [\n", encoding="utf-8")
    failing = _fund(tmp_path, "c-failing", {"kind": "http", "url": "http://127.0.0.1:9/none", "timeout_s": 1})
    pulls = pull_funds([good, broken_yaml, failing], "2021-03")
    assert [(p.code, p.error is None) for p in pulls] == [("a-good", True), ("b-broken", True), ("c-failing", False)]
    assert pulls[0].pulled == Pulled("files", "a-good", "2021-03")
    assert pulls[1].pulled is None  # its load reports the broken fund.yaml
    assert isinstance(pulls[2].error, SourceError) and "c-failing 2021-03" in str(pulls[2].error)
