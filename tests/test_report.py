"""End-to-end self-evaluation outputs for a seed-like fund (江门 2021 药品监督管理)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from budget_monitor.config import FundConfig, Measure
from budget_monitor.measures import measure_actuals
from budget_monitor.money_fmt import fen_to_wanyuan_str, fen_to_yuan_str, plain_number
from budget_monitor.report import (
    CHART_NAME,
    DOCX_NAME,
    HTML_NAME,
    JSON_NAME,
    MD_NAME,
    UNIT_CHART_NAME,
    XLSX_NAME,
    build_self_evaluation,
    md_escape,
    report_sections,
    write_outputs,
)

from readers import docx_text

BUDGET_FEN = 372_090_000  # 372.09 万元
CITY, TAISHAN, KAIPING, ENPING = (
    "江门市市场监督管理局",
    "台山市市场监督管理局",
    "开平市市场监督管理局",
    "恩平市市场监督管理局",
)

GOALS = [
    ("产出指标", "数量指标", "药品抽检批次", "≥550批次", 15),
    ("产出指标", "数量指标", "药包材抽检批次", "≥9批次", 5),
    ("产出指标", "数量指标", "化妆品抽检批次", "≥30批次", 5),
    ("产出指标", "数量指标", "医疗器械抽检批次", "≥55批次", 5),
    ("产出指标", "质量指标", "药品执法检查基本装备品种覆盖率", "≥70%", 15),
    ("效益指标", "社会效益指标", "大要案查办率", "100%", 15),
    ("产出指标", "数量指标", "药品监管干部脱产培训人次", "≥372人次", 10),
    ("效益指标", "可持续影响指标", "药品监管在职干部参加培训率", ">=70%", 10),
    ("满意度指标", "服务对象满意度指标", "药品安全保障水平", "有效提升", 10),
]

ACHIEVEMENTS = [
    "根据省局年度省抽计划制定科学合理的抽检方案，按时按质量完成本市药品抽检{{ actual['药品抽检批次'] }}批次，"
    "药包材抽检（抽样）{{ actual['药包材抽检批次'] }}批次，化妆品抽检{{ actual['化妆品抽检批次'] }}批次，"
    "医疗器械抽检{{ actual['医疗器械抽检批次'] }}批次，发现、降低和消除不合格药品导致的安全风险。",
    "2021年台山市市场监管局、开平市场监管局、恩平市场监管局的药品执法检查基本装备类装备品种覆盖率达到"
    "{{ actual['药品执法检查基本装备品种覆盖率'] }}，装备数量满足监管工作基本需要。",
    "台山、开平、恩平大要案查办率达{{ actual['大要案查办率'] }}。",
    "组织开展药品监管干部参加1天以上脱产培训{{ actual['药品监管干部脱产培训人次'] }}人次，"
    "台山、开平、恩平药品监管在职干部参加培训率达到{{ actual['药品监管在职干部参加培训率'] }}。",
]


def seed_config(**over) -> FundConfig:
    data = dict(
        code="jm-2021-drug",
        name="江门市2021年促进经济高质量发展专项资金（市场监督管理-药品监督管理）",
        short_name="药品监督管理",
        year=2021,
        department=CITY,
        uses="稽查执法及综合管理、地方队伍能力建设、药品医疗器械化妆品抽检和药品监管能力建设工作",
        goal_paragraphs=[
            "根据省局年度省抽计划制定科学合理的抽检方案，按时按质量完成本市省抽计划批次。",
            "提升基层药品执法检查装备水平，2021年台山、开平、恩平药品执法检查基本装备类装备品种覆盖率达到70%。",
            "严厉打击药品安全违法犯罪，台山、开平、恩平大要案查办率达100%。",
            "组织开展各类药品监管干部培训，台山、开平、恩平药品监管在职干部参加培训率达到70%。",
        ],
        achievement_templates=ACHIEVEMENTS,
        basis_document="《广东省药品监督管理局办公室关于开展2022年省级财政资金项目支出绩效自评工作的通知》（粤药监办〔2022〕142号）",
        measures={
            "药品抽检批次": Measure(source="inspections", agg="count", where={"category": "药品"}),
            "药包材抽检批次": Measure(source="inspections", agg="count", where={"category": "药包材"}),
            "化妆品抽检批次": Measure(source="inspections", agg="count", where={"category": "化妆品"}),
            "医疗器械抽检批次": Measure(source="inspections", agg="count", where={"category": "医疗器械"}),
            "药品监管干部脱产培训人次": Measure(source="outputs", agg="sum"),
            "药品安全保障水平": Measure(source="qualitative"),
        },
    )
    data.update(over)
    return FundConfig(**data)


def goals_df(rows=GOALS) -> pd.DataFrame:
    return pd.DataFrame([dict(level1=a, level2=b, name=c, target=d, weight=Decimal(e)) for a, b, c, d, e in rows])


def inspections_df() -> pd.DataFrame:
    rows = []
    for cat, n in [("药品", 550), ("药包材", 9), ("化妆品", 30), ("医疗器械", 55), ("食品", 3)]:
        for k in range(n):
            rows.append(
                dict(
                    sample_no=f"{cat}-{k}",
                    sample_date=f"2021-{k % 12 + 1:02d}-15",
                    category=cat,
                    unit=CITY,
                    result="合格",
                )
            )
    return pd.DataFrame(rows)


def outputs_df(unit_name: str = TAISHAN) -> pd.DataFrame:
    rows = [
        ("2021-06", "", "药品执法检查基本装备品种覆盖率", "40%"),
        ("2021-12", "", "药品执法检查基本装备品种覆盖率", "70%"),
        ("2021-12", "", "大要案查办率", "100%"),
        ("2021-06", unit_name, "药品监管干部脱产培训人次", "200"),
        ("2021-12", KAIPING, "药品监管干部脱产培训人次", "172"),
        ("2021-12", "", "药品监管在职干部参加培训率", "70%"),
        ("2021-12", "", "药品安全保障水平", "达成"),
    ]
    df = pd.DataFrame(rows, columns=["month", "unit", "name", "value"])
    df["value_num"] = [None if v.endswith("%") or not v[0].isdigit() else Decimal(v) for v in df["value"]]
    df["note"] = ""
    return df


# Cumulative execution (percent of the budget) at each month end: Q2 and Q3 behind.
CUM_PCT = [Decimal(x) for x in ["4.1", "12", "26", "30", "35", "38.2", "45", "55", "70", "85", "95", "100"]]


def monthly_rows(total_fen: int = BUDGET_FEN) -> list[dict]:
    out, prev = [], 0
    for m, pct in enumerate(CUM_PCT, start=1):
        cum = total_fen if m == 12 else int(total_fen * pct / 100)
        pace = round(m / 12 * 100, 2)
        rate = round(cum * 100 / total_fen, 2)
        out.append(
            {
                "month": f"2021-{m:02d}",
                "executed_yuan": fen_to_yuan_str(cum - prev),
                "cumulative_yuan": fen_to_yuan_str(cum),
                "cumulative_rate": rate,
                "pace": pace,
                "gap_points": round(rate - pace, 2),
            }
        )
        prev = cum
    return out


def quarter_rows(monthly: list[dict]) -> list[dict]:
    out = []
    for q in range(1, 5):
        m = monthly[q * 3 - 1]
        out.append(
            {
                "quarter": q,
                "cumulative_rate": m["cumulative_rate"],
                "pace": m["pace"],
                "gap_points": m["gap_points"],
                "lagging": m["gap_points"] < 0,
            }
        )
    return out


def unit_rows(unit_name: str = TAISHAN) -> list[dict]:
    shares = [
        (CITY, 172_090_000, []),
        (unit_name, 80_000_000, [2, 3]),
        (KAIPING, 60_000_000, [2]),
        (ENPING, 60_000_000, []),
    ]
    return [
        {
            "unit": u,
            "budget_yuan": fen_to_yuan_str(f),
            "executed_yuan": fen_to_yuan_str(f),
            "execution_rate": 100.0,
            "lagging_quarters": lq,
        }
        for u, f, lq in shares
    ]


def seed_evaluation(unit_name: str = TAISHAN, cfg: FundConfig | None = None) -> tuple[dict, FundConfig]:
    cfg = cfg or seed_config()
    goals = goals_df()
    actuals = measure_actuals(cfg, goals, inspections_df(), outputs_df(unit_name), Decimal(100))
    monthly = monthly_rows()
    ev = build_self_evaluation(
        cfg,
        goals,
        actuals,
        {"initial_fen": BUDGET_FEN, "adjusted_fen": BUDGET_FEN, "executed_fen": BUDGET_FEN},
        monthly,
        quarter_rows(monthly),
        unit_rows(unit_name),
        causes={2: "部分项目启动较晚"},
    )
    return ev, cfg


SEED_LAG = "第二季度和第三季度支出进度不达序时进度。部分项目启动较晚导致第二季度支出进度不达序时进度。"


def test_self_evaluation_json_has_the_contract_shape():
    ev, _ = seed_evaluation()
    assert list(ev) == [
        "fund",
        "budget",
        "monthly",
        "quarters",
        "units",
        "indicators",
        "execution_score",
        "total_score",
        "grade",
        "problems",
        "improvements",
    ]
    assert ev["budget"] == {
        "initial_yuan": "3720900.00",
        "adjusted_yuan": "3720900.00",
        "executed_yuan": "3720900.00",
        "execution_rate": 100.0,
    }
    assert ev["execution_score"] == {"weight": 10.0, "score": 10.0}
    assert ev["total_score"] == 100.0 and ev["grade"] == "优"
    first = ev["indicators"][0]
    assert first == {
        "level1": "产出指标",
        "level2": "数量指标",
        "name": "药品抽检批次",
        "target": "≥550批次",
        "actual": "550",
        "weight": 15.0,
        "score": 15.0,
        "met": True,
        "deviation": "",
    }
    assert ev["problems"][0] == SEED_LAG
    assert ev["improvements"][0].startswith("加强工作规划，提高资金执行进度。一是")
    json.dumps(ev, ensure_ascii=False)  # serialisable as is


def test_report_sections_reproduce_the_seed_sentences():
    ev, cfg = seed_evaluation()
    s = report_sections(ev, cfg)
    assert s["basic"] == (
        "江门市2021年促进经济高质量发展专项资金（市场监督管理-药品监督管理）为372.09万元，支出372.09万元，支出率100%。"
        "该补助资金重点用于支持稽查执法及综合管理、地方队伍能力建设、药品医疗器械化妆品抽检和药品监管能力建设工作。"
    )
    assert s["score_text"].startswith(
        "按照《广东省药品监督管理局办公室关于开展2022年省级财政资金项目支出绩效自评工作的通知》"
    )
    assert s["score_text"].endswith("综合考量，本专项资金的自评得分为100分，绩效等级为优。")
    assert (
        "完成本市药品抽检550批次，药包材抽检（抽样）9批次，化妆品抽检30批次，医疗器械抽检55批次" in s["achievements"][0]
    )
    assert s["achievements"][0].startswith("1.")
    assert "脱产培训372人次" in s["achievements"][3]
    assert s["goal_paragraphs"][1].startswith("2.提升基层")


@pytest.mark.parametrize(
    "grade,phrase",
    [
        ("优", "取得良好的效益"),
        ("良", "取得较好的效益"),
        ("中", "取得一定效益"),
        ("差", "效益未达到预期"),
        ("合格", "已按计划实施"),
    ],
)
def test_score_sentence_follows_the_grade(grade, phrase):
    ev, cfg = seed_evaluation()
    ev["grade"] = grade
    text = report_sections(ev, cfg)["score_text"]
    assert phrase in text and text.endswith(f"绩效等级为{grade}。")


def test_write_outputs_writes_every_file(tmp_path: Path):
    ev, cfg = seed_evaluation()
    paths = write_outputs(ev, cfg, tmp_path)
    names = {p.name for p in paths}
    assert names == {JSON_NAME, DOCX_NAME, HTML_NAME, MD_NAME, XLSX_NAME, CHART_NAME, UNIT_CHART_NAME}
    assert all(p.is_file() and p.stat().st_size > 0 for p in paths)
    assert json.loads((tmp_path / JSON_NAME).read_text(encoding="utf-8")) == ev


def test_docx_report_has_the_seed_figures(tmp_path: Path):
    from docx import Document

    ev, cfg = seed_evaluation()
    write_outputs(ev, cfg, tmp_path)
    text = docx_text(tmp_path / DOCX_NAME)
    for needle in [
        "372.09万元",
        "支出率100%",
        "自评得分为100分",
        "绩效等级为优",
        "第二季度和第三季度支出进度不达序时进度",
        "一、项目基本情况",
        "（一）专项资金基本情况",
        "（二）专项资金绩效目标",
        "二、项目绩效情况",
        "（三）存在问题",
        "三、改进意见",
        "加强工作规划，提高资金执行进度",
    ]:
        assert needle in text, needle
    assert "{{" not in text and "{%" not in text
    doc = Document(str(tmp_path / DOCX_NAME))
    # The 自评表 as the official template lays it out (writers/form_layout.py): row 9 heads the indicators.
    score_table = doc.tables[0]
    header = [c.text for c in score_table.rows[9].cells][1:]
    assert header == [
        "一级指标",
        "二级指标",
        "三级指标",
        "年度指标值",
        "实际完成值",
        "分值",
        "得分",
        "偏差原因分析及改进措施",
    ]
    assert [c.text for c in score_table.rows[10].cells][3:8] == ["药品抽检批次", "≥550批次", "550", "15", "15"]
    assert len(score_table.rows) == 10 + len(GOALS) + 1
    assert "372.09" in [c.text for c in score_table.rows[3].cells]
    assert len(doc.inline_shapes) == 2  # both charts embedded
    # East Asian font names are set so Word/LibreOffice render Chinese.
    styles_xml = doc.styles.element.xml
    assert 'w:eastAsia="仿宋"' in styles_xml and 'w:eastAsia="黑体"' in styles_xml
    sec = doc.sections[0]
    assert (round(sec.page_width.mm), round(sec.page_height.mm)) == (210, 297)


def test_html_and_markdown_have_the_seed_figures(tmp_path: Path):
    ev, cfg = seed_evaluation()
    write_outputs(ev, cfg, tmp_path)
    for name in (HTML_NAME, MD_NAME):
        text = (tmp_path / name).read_text(encoding="utf-8")
        for needle in [
            "372.09万元",
            "自评得分为100分",
            "绩效等级为优",
            "第二季度和第三季度支出进度不达序时进度",
            "（二）绩效目标完成情况",
            "三、改进意见",
            CHART_NAME,
        ]:
            assert needle in text, (name, needle)


def test_xlsx_score_table_layout(tmp_path: Path):
    from openpyxl import load_workbook

    ev, cfg = seed_evaluation()
    write_outputs(ev, cfg, tmp_path)
    ws = load_workbook(tmp_path / XLSX_NAME).active
    # Rows 1–2 title, then the official template's grid (writers/form_layout.py) from row 3.
    assert [ws.cell(5, c).value for c in range(4, 10)] == [
        "年初预算数",
        "全年预算数",
        "全年执行数",
        "分值",
        "执行率",
        "得分",
    ]
    assert ws.cell(6, 2).value == "年度资金总额"
    assert [ws.cell(6, c).value for c in range(4, 7)] == ["=SUM(D7:D9)", "=SUM(E7:E9)", "=SUM(F7:F9)"]
    assert [ws.cell(6, c).value for c in range(7, 10)] == [10, 1, 10]
    assert [ws.cell(12, c).value for c in range(2, 10)] == [
        "一级指标",
        "二级指标",
        "三级指标",
        "年度指标值",
        "实际完成值",
        "分值",
        "得分",
        "偏差原因分析及改进措施",
    ]


def test_docx_template_compiled_once_renders_each_fund_its_own(tmp_path: Path):
    """The docx template's XML is compiled once per process (report._docx_env);
    reports rendered from the cached template carry their own fund's text, and
    the same bytes of XML as a fresh compile."""
    import zipfile

    from jinja2 import Environment

    from budget_monitor import report

    report._docx_env.cache_clear()
    first, cfg = seed_evaluation()
    other_cfg = seed_config(department="另一个主管部门")
    second, other_cfg = seed_evaluation(cfg=other_cfg)
    a = report.write_docx(report_sections(first, cfg), tmp_path / "a.docx", None, None)
    compiled = dict(report._docx_env()._compiled)  # body, footer, document properties
    b = report.write_docx(report_sections(second, other_cfg), tmp_path / "b.docx", None, None)
    assert report._docx_env()._compiled == compiled  # the second report compiled nothing
    assert "另一个主管部门" in docx_text(b) and "另一个主管部门" not in docx_text(a)
    fresh_env = Environment(autoescape=True)
    original = report._docx_env
    try:
        report._docx_env = lambda: fresh_env
        c = report.write_docx(report_sections(second, other_cfg), tmp_path / "c.docx", None, None)
    finally:
        report._docx_env = original
    with zipfile.ZipFile(b) as zb, zipfile.ZipFile(c) as zc:
        assert zb.read("word/document.xml") == zc.read("word/document.xml")


INJECT_HTML = "<script>alert(1)</script>"
INJECT_XLSX = '=HYPERLINK("http://x","y")'


def test_injection_is_escaped_in_html_and_markdown(tmp_path: Path):
    cfg = seed_config(department=INJECT_HTML)
    ev, cfg = seed_evaluation(unit_name=INJECT_HTML, cfg=cfg)
    ev["indicators"][0]["name"] = INJECT_HTML
    write_outputs(ev, cfg, tmp_path)
    html = (tmp_path / HTML_NAME).read_text(encoding="utf-8")
    md = (tmp_path / MD_NAME).read_text(encoding="utf-8")
    assert INJECT_HTML not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    # Markdown escapes, not HTML entities: "\<script>" shows "<script>" as text.
    assert INJECT_HTML not in md and "\\<script>" in md
    assert INJECT_HTML in docx_text(tmp_path / DOCX_NAME)  # shown literally, XML stays valid


def test_injection_is_inert_in_xlsx(tmp_path: Path):
    from openpyxl import load_workbook

    ev, cfg = seed_evaluation()
    ev["indicators"][0]["name"] = INJECT_XLSX
    ev["indicators"][1]["deviation"] = "+cmd|' /C calc'!A0"
    ev["fund"]["department"] = "@SUM(1+1)"
    write_outputs(ev, cfg, tmp_path)
    ws = load_workbook(tmp_path / XLSX_NAME).active
    # The form's own totals are formulas (data_type "f"); no data text is one.
    found = [
        c
        for row in ws.iter_rows()
        for c in row
        if isinstance(c.value, str) and c.value[:1] in "=+@" and c.data_type != "f"
    ]
    assert {c.value for c in ws._cells.values() if c.data_type == "f"} <= {f"=SUM({col}7:{col}9)" for col in "DEF"} | {
        "=SUM(G6,G13:G21)",
        "=SUM(I6,H13:H21)",
    }
    assert {c.value for c in found} == {INJECT_XLSX, "+cmd|' /C calc'!A0", "@SUM(1+1)"}
    for cell in found:
        assert cell.data_type == "s"
        assert cell.quotePrefix


def test_markdown_escape_neutralises_markup():
    assert md_escape("a*b_c|d") == "a\\*b\\_c\\|d"
    assert md_escape("# 标题") == "\\# 标题"
    assert md_escape("1. 根据") == "1\\. 根据"
    assert md_escape("- 项") == "\\- 项"
    assert md_escape("<b>") == "\\<b>"
    assert md_escape(">=70%") == "\\>=70%" and md_escape("达到>=70%") == "达到>=70%"
    assert md_escape("A&B") == "A\\&B"
    assert md_escape("372.09万元") == "372.09万元"


def test_nothing_lagged_and_all_met_says_so():
    cfg = seed_config()
    goals = goals_df()
    actuals = measure_actuals(cfg, goals, inspections_df(), outputs_df(), Decimal(100))
    monthly = monthly_rows()
    quarters = [dict(q, lagging=False) for q in quarter_rows(monthly)]
    units = [dict(u, lagging_quarters=[]) for u in unit_rows()]
    ev = build_self_evaluation(
        cfg,
        goals,
        actuals,
        {"initial_fen": BUDGET_FEN, "adjusted_fen": BUDGET_FEN, "executed_fen": BUDGET_FEN},
        monthly,
        quarters,
        units,
    )
    assert ev["problems"] == ["本专项资金全年支出进度均达到序时进度要求，绩效目标全部完成，未发现明显问题。"]
    assert "加强工作规划" not in "".join(ev["improvements"])


def test_partial_execution_lowers_the_score_and_is_reported():
    cfg = seed_config()
    goals = goals_df()
    actuals = measure_actuals(cfg, goals, inspections_df(), outputs_df(), Decimal("90"))
    monthly = monthly_rows()
    executed = BUDGET_FEN * 9 // 10
    ev = build_self_evaluation(
        cfg,
        goals,
        actuals,
        {"initial_fen": BUDGET_FEN, "adjusted_fen": BUDGET_FEN, "executed_fen": executed},
        monthly,
        quarter_rows(monthly),
        [],
    )
    assert ev["budget"]["execution_rate"] == 90.0
    assert ev["execution_score"] == {"weight": 10.0, "score": 9.0}
    assert ev["total_score"] == 99.0
    assert any("尚有37.21万元未支出" in p for p in ev["problems"])


@pytest.mark.parametrize("fen,text", [(0, "0.00"), (5, "0.05"), (372_090_000, "3720900.00"), (-150, "-1.50")])
def test_money_is_exact_yuan_text(fen: int, text: str):
    assert fen_to_yuan_str(fen) == text


def test_outputs_without_units_or_templates(tmp_path: Path):
    """A fund without units, achievement templates or basis document still gets a full report."""
    from docx import Document

    cfg = seed_config(achievement_templates=[], basis_document="", uses="")
    goals = goals_df()
    actuals = measure_actuals(cfg, goals, inspections_df(), outputs_df(), Decimal(100))
    monthly = monthly_rows()[:6]
    ev = build_self_evaluation(
        cfg,
        goals,
        actuals,
        {"initial_fen": BUDGET_FEN, "adjusted_fen": BUDGET_FEN, "executed_fen": BUDGET_FEN},
        monthly,
        quarter_rows(monthly_rows())[:2],
        [],
    )
    paths = write_outputs(ev, cfg, tmp_path)
    assert UNIT_CHART_NAME not in {p.name for p in paths}
    doc = Document(str(tmp_path / DOCX_NAME))
    assert len(doc.tables) == 1 and len(doc.inline_shapes) == 1
    text = docx_text(tmp_path / DOCX_NAME)
    assert "药品抽检批次：年度指标值≥550批次，实际完成值550。" in text
    assert "按照项目支出绩效自评工作相关要求" in text


# ---- exact rate and exact "met" (rules.md "Self-evaluation score")


def _evaluate(adjusted_fen: int, executed_fen: int, goals: pd.DataFrame | None = None) -> dict:
    cfg = seed_config()
    goals = goals_df() if goals is None else goals
    actuals = measure_actuals(cfg, goals, inspections_df(), outputs_df(), Decimal(100))
    monthly = monthly_rows()
    return build_self_evaluation(
        cfg,
        goals,
        actuals,
        {"initial_fen": adjusted_fen, "adjusted_fen": adjusted_fen, "executed_fen": executed_fen},
        monthly,
        quarter_rows(monthly),
        [],
    )


def test_execution_score_is_weight_times_exact_rate_rounded_once():
    # 123.45 元 of 1000 元: rate 12.345 -> presented 12.35, score 10 × 0.12345 = 1.2345 -> 1.23 (not 1.24).
    ev = _evaluate(100_000, 12_345)
    assert ev["budget"]["execution_rate"] == 12.35
    assert ev["execution_score"] == {"weight": 10.0, "score": 1.23}
    assert ev["total_score"] == 91.23


def test_execution_met_only_when_rate_reaches_100_exactly():
    # 1 fen unspent: the rate and the score both present as 100 / 10, yet the money is not all spent.
    ev = _evaluate(BUDGET_FEN, BUDGET_FEN - 1)
    assert ev["budget"]["execution_rate"] == 100.0
    assert ev["execution_score"]["score"] == 10.0
    assert any("尚有0.01元未支出" in p for p in ev["problems"])


def test_met_decided_on_exact_comparison_not_on_rounded_score():
    # 覆盖率 70% against ≥70.01%: 15 × 70/70.01 = 14.998 -> 15.00, but the target is not reached.
    rows = [r if r[2] != "药品执法检查基本装备品种覆盖率" else r[:3] + ("≥70.01%", r[4]) for r in GOALS]
    ev = _evaluate(BUDGET_FEN, BUDGET_FEN, goals_df(rows))
    ind = next(i for i in ev["indicators"] if i["name"] == "药品执法检查基本装备品种覆盖率")
    assert ind["score"] == 15.0 and ind["met"] is False
    assert ind["deviation"] == "实际完成值70%，未达到年度指标值≥70.01%，按完成比例计分。"
    assert any("“药品执法检查基本装备品种覆盖率”实际完成值为70%，年度指标值为≥70.01%" in p for p in ev["problems"])
    assert ev["total_score"] == 100.0  # the score rounding itself is unchanged


# ---- one number formatter


@pytest.mark.parametrize(
    "value,text",
    [
        (Decimal("100.00"), "100"),
        (Decimal("98.50"), "98.5"),
        (Decimal("2.675"), "2.68"),
        (Decimal("1.005"), "1.01"),
        (100.0, "100"),
        (87.21, "87.21"),
        (0.1, "0.1"),
        (15, "15"),
        ("12.30", "12.3"),
        (Decimal("-0.001"), "0"),
        (Decimal("1E+3"), "1000"),
        (Decimal("-1.50"), "-1.5"),
    ],
)
def test_plain_number_at_most_two_decimals_no_trailing_zeros(value, text):
    assert plain_number(value) == text


def test_plain_number_keeps_every_digit_when_asked():
    assert plain_number(Decimal("99.995"), places=None) == "99.995"
    assert plain_number(Decimal("550.000"), places=None) == "550"


@pytest.mark.parametrize("fen", [372_090_000, 12_345, 50, 1_234_567_891, 49])
def test_report_wan_figures_come_from_the_money_formatter(fen: int):
    ev = _evaluate(fen, fen)
    s = report_sections(ev, seed_config())
    assert s["table"]["adjusted_wan"] == s["table"]["executed_wan"] == fen_to_wanyuan_str(fen)
    assert f"为{fen_to_wanyuan_str(fen)}万元" in s["basic"]


# ---- atomic outputs (issue 13 item 8): a failure leaves the old files whole and no temporary file

import errno  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

from budget_monitor import atomic, report  # noqa: E402


def _snapshot_dir(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _disk_full_at(monkeypatch: pytest.MonkeyPatch, name: str, err: int = errno.ENOSPC) -> None:
    """The disk fills half-way through writing ``name`` (a write error carries no file name)."""
    real = atomic._write_all

    def write_all(path: Path, data: bytes) -> None:
        if f".{name}." in path.name:  # its temp, or the temp of its stage temp
            real(path, data[: len(data) // 2])
            raise OSError(err, os.strerror(err))
        real(path, data)

    monkeypatch.setattr(atomic, "_write_all", write_all)


def _fail_mid_save(monkeypatch: pytest.MonkeyPatch) -> None:
    """The last file write_outputs makes, 自评表.xlsx, hits a full disk."""
    _disk_full_at(monkeypatch, XLSX_NAME)


def test_write_outputs_failure_leaves_the_previous_report_whole_and_no_temp(tmp_path: Path, monkeypatch):
    ev, cfg = seed_evaluation()
    write_outputs(ev, cfg, tmp_path)
    before = _snapshot_dir(tmp_path)
    ev2, _ = seed_evaluation(unit_name=KAIPING)  # a different report: a mix would show
    _fail_mid_save(monkeypatch)
    with pytest.raises(OSError) as err:
        write_outputs(ev2, cfg, tmp_path)
    assert err.value.errno == errno.ENOSPC
    assert err.value.filename == str(tmp_path / XLSX_NAME)  # the file asked for, not the hidden temp
    assert _snapshot_dir(tmp_path) == before  # every old file byte for byte, nothing new, no temp


def test_write_outputs_failure_on_a_fresh_directory_leaves_it_empty(tmp_path: Path, monkeypatch):
    ev, cfg = seed_evaluation()
    _fail_mid_save(monkeypatch)
    with pytest.raises(OSError):
        write_outputs(ev, cfg, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


def test_write_outputs_sweeps_temps_of_a_killed_run_but_not_of_a_live_one(tmp_path: Path):
    dead = tmp_path / f".{DOCX_NAME}.{_dead_pid()}-0123abcd.tmp.docx"
    dead.write_bytes(b"half a docx")
    live = tmp_path / f".{XLSX_NAME}.{os.getppid()}-89abcdef.tmp.xlsx"
    live.write_bytes(b"being written by a running process")
    ev, cfg = seed_evaluation()
    write_outputs(ev, cfg, tmp_path)
    assert not dead.exists() and live.exists()


def test_atomic_write_keeps_old_content_when_the_write_fails(tmp_path: Path):
    dest = tmp_path / "a.json"
    atomic.write_text(dest, "old")
    with pytest.raises(RuntimeError):
        with atomic.atomic_path(dest) as tmp:
            tmp.write_text("new but half")
            raise RuntimeError("boom")
    assert dest.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["a.json"]
    atomic.write_bytes(dest, b"new")
    assert dest.read_bytes() == b"new" and [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_atomic_copy_and_umask_mode(tmp_path: Path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"\x00raw\xff")
    old = os.umask(0o027)
    try:
        dest = atomic.copy_file(src, tmp_path / "dest.bin")
    finally:
        os.umask(old)
    assert dest.read_bytes() == b"\x00raw\xff"
    assert dest.stat().st_mode & 0o777 == 0o640  # as open() would make it, not mkstemp's 0600
    assert atomic.write_bytes(tmp_path / "owner.bin", b"x", mode=0o600).stat().st_mode & 0o777 == 0o600


def test_atomic_temp_names_are_bounded_hidden_and_recognised(tmp_path: Path):
    long_name = "很长的文件名" * 12 + ".csv"  # 220 bytes: a temp name with it in full would exceed NAME_MAX
    name = atomic.temp_name(tmp_path / long_name)
    assert name.startswith(".") and name.endswith(".tmp.csv") and len(name.encode()) < 120
    assert atomic.is_temp_name(name) and not atomic.is_temp_name(long_name)
    atomic.write_text(tmp_path / long_name, "ok")
    assert (tmp_path / long_name).read_text() == "ok"


def test_staged_renames_nothing_until_every_file_is_written(tmp_path: Path):
    (tmp_path / "a.txt").write_text("old a")
    with pytest.raises(ValueError):
        with atomic.staged(tmp_path) as stage:
            stage.path("a.txt").write_text("new a")
            stage.path("b.txt").write_text("new b")
            assert (tmp_path / "a.txt").read_text() == "old a"
            raise ValueError("the third file failed")
    assert _snapshot_dir(tmp_path) == {"a.txt": b"old a"}
    with atomic.staged(tmp_path) as stage:
        stage.path("a.txt").write_text("new a")
        stage.path("b.txt").write_text("new b")
    assert _snapshot_dir(tmp_path) == {"a.txt": b"new a", "b.txt": b"new b"}


def test_chart_failure_leaves_no_png_and_no_temp(tmp_path: Path, monkeypatch):
    from budget_monitor.charts import execution_chart

    _disk_full_at(monkeypatch, CHART_NAME, errno.EFBIG)
    monthly = monthly_rows()
    with pytest.raises(OSError) as err:
        execution_chart(monthly, quarter_rows(monthly), tmp_path / CHART_NAME)
    assert err.value.filename == str(tmp_path / CHART_NAME)  # a write error without a name gets the PNG's
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", [CHART_NAME, JSON_NAME, DOCX_NAME, MD_NAME])
def test_write_outputs_full_disk_at_any_file_names_it_and_leaves_nothing(tmp_path: Path, monkeypatch, name: str):
    ev, cfg = seed_evaluation()
    _disk_full_at(monkeypatch, name)
    with pytest.raises(OSError) as err:
        write_outputs(ev, cfg, tmp_path)
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(tmp_path / name)
    assert list(tmp_path.iterdir()) == []


# ---- bounded template rendering (issue 13 item 8)

ENDLESS = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"


@pytest.fixture
def short_render_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(report.RENDER_TIMEOUT_ENV, "0.3")


def test_fund_template_that_never_ends_is_stopped_at_the_bound(short_render_bound):
    with pytest.raises(report.RenderTimeout) as err:
        report.render_fund_text(ENDLESS, "fund.yaml 的 achievement_templates 第1条")
    assert "achievement_templates 第1条" in str(err.value) and "0.3 秒" in str(err.value)
    assert isinstance(err.value, report.RenderError) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    "source",
    [
        "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(80) }}",
        "{% for x in [1, 2] recursive %}{{ loop([1, 2]) if loop.depth < 60 }}{% endfor %}",
        "{% for c in 'x' * 90000 %}{% for d in 'x' * 90000 %}{% endfor %}{% endfor %}",
    ],
    ids=["exponential-macro", "recursive-loop", "loop-over-strings"],
)
def test_every_kind_of_endless_template_is_stopped(short_render_bound, source: str):
    with pytest.raises(report.RenderTimeout):
        report.render_fund_text(source)


@pytest.mark.parametrize(
    "source",
    [
        "{{ 9 ** (9 ** 9) }}",  # one C call that would never return (and jinja would constant-fold it)
        "{% set ns = namespace(x=9) %}{% for i in range(60) %}{% set ns.x = ns.x * ns.x %}{% endfor %}{{ ns.x }}",
        "{{ 'a' * 10000000000 }}",
    ],
    ids=["power", "repeated-squaring", "string-repeat"],
)
def test_operations_too_big_to_bound_are_refused(source: str):
    with pytest.raises(report.RenderError) as err:
        report.render_fund_text(source)
    assert "不允许的操作" in str(err.value)


def test_sandbox_security_error_becomes_render_error():
    with pytest.raises(report.RenderError) as err:
        report.render_fund_text("{{ ''.__class__.__mro__[1].__subclasses__() }}", "fund.yaml 的模板")
    assert "沙箱不允许" in str(err.value) and "fund.yaml 的模板" in str(err.value)


def test_bounded_sandbox_renders_ordinary_templates_as_before():
    src = "{% for i in range(3) %}{{ i }}{% endfor %}|{{ 2 ** 10 }}|{{ 'ab' * 2 }}|{{ [1] * 3 }}|{{ 3 * 4 }}"
    assert report.render_fund_text(src) == "012|1024|abab|[1, 1, 1]|12"


def test_bad_achievement_template_is_named_in_the_error(tmp_path: Path):
    cfg = seed_config(achievement_templates=[ACHIEVEMENTS[0], "完成{{ actual['药品抽检批次'] + }}"])
    ev, _ = seed_evaluation(cfg=cfg)
    with pytest.raises(report.RenderError) as err:
        write_outputs(ev, cfg, tmp_path)
    assert "achievement_templates 第2条" in str(err.value)
    assert list(tmp_path.iterdir()) == []  # the charts drawn before it were not left behind


def test_endless_achievement_template_stops_write_outputs_without_output(tmp_path: Path, short_render_bound):
    cfg = seed_config(achievement_templates=[ENDLESS])
    ev, _ = seed_evaluation(cfg=cfg)
    with pytest.raises(report.RenderTimeout):
        write_outputs(ev, cfg, tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("render", [report.render_html, report.render_markdown], ids=["html", "md"])
def test_report_templates_loops_are_bounded_too(short_render_bound, render):
    import itertools

    ev, cfg = seed_evaluation()
    sections = report_sections(ev, cfg)
    row = sections["indicators"][0]
    sections["indicators"] = (row for _ in itertools.count())  # data that never ends
    # The html 自评表 is painted from the form's grid rows (writers/form_layout.py).
    form_row = sections["form_rows"][0]
    sections["form_rows"] = (form_row for _ in itertools.count())
    with pytest.raises(report.RenderTimeout):
        render(sections)


def test_render_timeout_env_must_be_a_positive_number(monkeypatch):
    monkeypatch.setenv(report.RENDER_TIMEOUT_ENV, "abc")
    with pytest.raises(report.RenderError, match="BUDGET_MONITOR_RENDER_TIMEOUT_S"):
        report.render_fund_text("x")
    monkeypatch.setenv(report.RENDER_TIMEOUT_ENV, "0")
    with pytest.raises(report.RenderError):
        report.render_fund_text("x")


@pytest.mark.parametrize("shared,dir_mode,file_mode", [("", 0o700, 0o600), ("1", 0o750, 0o640)])
def test_reports_are_owner_only_unless_shared(tmp_path: Path, monkeypatch, shared, dir_mode, file_mode):
    """Reports hold payment data (issue 13 item 10): whatever the umask, every file and the
    created directory are owner-only, or group-readable with BUDGET_MONITOR_SHARED_GROUP=1."""
    monkeypatch.setenv("BUDGET_MONITOR_SHARED_GROUP", shared)
    ev, cfg = seed_evaluation()
    old = os.umask(0o022)
    try:
        paths = write_outputs(ev, cfg, tmp_path / "reports" / "2021")
    finally:
        os.umask(old)
    assert {p.stat().st_mode & 0o777 for p in paths} == {file_mode}  # the charts too (written by the chart code)
    assert (tmp_path / "reports").stat().st_mode & 0o777 == dir_mode
    assert (tmp_path / "reports" / "2021").stat().st_mode & 0o777 == dir_mode
