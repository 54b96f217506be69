"""The year-end model (yearend.py) and its writers (writers/): one model, many writers.

The golden files are the self_evaluation.json of both examples as the code
made them before the model existed (issue 16 item 1): the model and its JSON
writer must give them back byte for byte.
"""

from __future__ import annotations

import json
import re
import shutil
from datetime import datetime
from fractions import Fraction
from pathlib import Path

import pytest

from budget_monitor import store, writers
from budget_monitor.config import load_fund_config
from budget_monitor.pipeline import close_month, evaluate_year, load_month, run_year_end
from budget_monitor.writers.json_writer import JSON_NAME, json_text, to_json
from budget_monitor.yearend import YearEnd, from_json, with_draft

REPO = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).with_name("golden")
EXAMPLES = ["jiangmen-2021", "second-fund-2022"]
WRITERS_DIR = REPO / "include" / "budget_monitor" / "writers"


def _closed_year(name: str, tmp_path: Path) -> tuple[Path, str]:
    fund = tmp_path / name
    shutil.copytree(REPO / "examples" / name, fund)
    db = f"sqlite:///{tmp_path / 's.db'}"
    cfg = load_fund_config(fund)
    for m in range(1, 13):
        month = f"{cfg.year}-{m:02d}"
        load_month(fund, month, db, cfg=cfg)
        close_month(fund, month, db, cfg=cfg, chart=False)
    return fund, db


# The clocks are injected: the generation time through SOURCE_DATE_EPOCH (as
# provenance.generation_time reads it, 2022-01-05 09:30 Asia/Shanghai), the
# store's load times by fixing store.now_local for this test's loads.
FIXED_EPOCH = "1641346200"
FIXED_NOW = datetime(2022, 1, 5, 9, 0, 0)
# What changes from commit to commit is replaced before comparing: the code
# version (the git commit) and the digests of the package's rules and
# templates (any template edit). test_provenance.py recomputes those.
VOLATILE = "<volatile>"


def stable_text(text: str) -> str:
    data = json.loads(text)
    prov = data.get("provenance")
    if prov is not None:
        prov["code_version"] = prov["rules_sha256"] = prov["templates_sha256"] = VOLATILE
    return json.dumps(data, ensure_ascii=False, indent=2) + "\n"


def fix_clocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", FIXED_EPOCH)
    monkeypatch.setattr(store, "now_local", lambda: FIXED_NOW)


@pytest.mark.parametrize("name", EXAMPLES)
def test_self_evaluation_json_is_byte_identical_to_the_golden_file(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    fix_clocks(monkeypatch)
    fund, db = _closed_year(name, tmp_path)
    cfg = load_fund_config(fund)
    model = evaluate_year(store.open_store(db), cfg, fund)
    # The model holds fen and exact rates; only the writers format them.
    assert isinstance(model, YearEnd) and isinstance(model.adjusted_fen, int)
    assert isinstance(model.execution_rate, Fraction)
    assert all(isinstance(m.rate, Fraction) for m in model.monthly if m.rate is not None)
    golden = (GOLDEN / f"{name}.self_evaluation.json").read_bytes()
    assert stable_text(json_text(model)).encode("utf-8") == golden
    run_year_end(fund, cfg.year, tmp_path / "out", db, queue=False)
    assert stable_text((tmp_path / "out" / JSON_NAME).read_text(encoding="utf-8")).encode("utf-8") == golden


@pytest.mark.parametrize("name", EXAMPLES)
def test_contract_fields_of_the_golden_file_are_unchanged(name: str):
    """The fields of the data contract are the bytes they were before issue 15: only new keys were added."""
    data = json.loads((GOLDEN / f"{name}.self_evaluation.json").read_text(encoding="utf-8"))
    added = ["self_evaluation_form", "provenance"]
    assert list(data)[-2:] == added
    before = {k: v for k, v in data.items() if k not in added}
    assert json.dumps(before, ensure_ascii=False, indent=2) + "\n" == (GOLDEN / "contract" / f"{name}.json").read_text(
        encoding="utf-8"
    )


@pytest.mark.parametrize("name", EXAMPLES)
def test_json_reader_is_the_inverse_of_the_json_writer(name: str):
    text = (GOLDEN / f"{name}.self_evaluation.json").read_text(encoding="utf-8")
    assert json_text(from_json(json.loads(text))) == text


def test_writers_table_names_every_output():
    files = {f for w in writers.WRITERS if w.kind == "file" for f in w.files}
    assert files == {
        "self_evaluation.json",
        "自评报告.docx",
        "自评报告.html",
        "自评报告.md",
        "自评表.xlsx",
        "执行进度.png",
        "单位执行率.png",
    }
    assert [w.name for w in writers.WRITERS if w.kind == "mail"] == ["mail"]


# Reading a formatted figure back: money text -> fen, a rate's text -> a number, the JSON reader.
_PARSE_BACK = re.compile(r"yuan_str_to_fen|Decimal\(str\(|int\(Decimal|from_json|float\(\s*[a-z_]*\[|float\(str")


def test_no_writer_parses_a_formatted_number_back():
    for path in sorted(WRITERS_DIR.glob("*.py")):
        hits = [line for line in path.read_text(encoding="utf-8").splitlines() if _PARSE_BACK.search(line)]
        assert hits == [], path.name


def test_a_new_output_format_is_one_writer_and_one_row(tmp_path: Path):
    cfg = load_fund_config(REPO / "examples" / "jiangmen-2021")
    model = from_json(json.loads((GOLDEN / "jiangmen-2021.self_evaluation.json").read_text(encoding="utf-8")))

    def write_csv(m: YearEnd, out: writers.Output) -> list[str]:
        out.stage.write_text("预算.csv", f"adjusted_fen,{m.adjusted_fen}\n")
        return ["预算.csv"]

    table = (*writers.WRITERS, writers.Writer("csv", "file", write_csv, ("预算.csv",)))
    paths = writers.write_outputs(model, cfg, tmp_path, writers=table)
    assert paths[-1].name == "预算.csv" and paths[-1].read_text() == "adjusted_fen,372090000\n"
    assert json.loads((tmp_path / JSON_NAME).read_text(encoding="utf-8")) == to_json(model)


def test_draft_model_says_so_in_the_json_only_at_the_end():
    model = from_json(json.loads((GOLDEN / "jiangmen-2021.self_evaluation.json").read_text(encoding="utf-8")))
    assert "draft" not in to_json(model)
    assert list(to_json(with_draft(model)))[-1] == "draft" and to_json(with_draft(model))["draft"] is True
