#!/usr/bin/env python3
"""Generate the example fund directories under ``examples/``.

- ``jiangmen-2021``: the seed report's fund (江门市 药品监督管理, 372.09 万元,
  Q2 and Q3 behind pace, every goal met, score 100, grade 优).
- ``second-fund-2022``: a smaller fund of a different shape for tests
  (milestone pace, 追加 and 调减, partly met goals, a ≤ indicator, a
  qualitative indicator, 90% execution, grade 良).

The data imitates what finance systems really export: GBK CSV, UTF-8 CSV
with and without BOM, XLSX with real date cells, varying money and date
formats, refunds (退回) as negative rows. Everything is derived from a fixed
random seed, money is integer fen throughout, and XLSX files are re-zipped
with fixed timestamps so that two runs give byte-identical files.

Usage: ``python scripts/make_example_fund.py [--out DIR]`` (default: the
repo's ``examples/``).
"""

from __future__ import annotations

import argparse
import calendar
import csv
import datetime as dt
import io
import random
import re
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import chinese_calendar
import openpyxl
import yaml

REPO = Path(__file__).resolve().parent.parent
SEED = 20210630
FIXED_TIME = dt.datetime(2022, 1, 10, 9, 0, 0)

# Sub-directories whose files are entirely generated (stale files removed).
GENERATED_DIRS = ("payments", "inspections", "outputs")


# --------------------------------------------------------------------------
# Money and text formatting (fen in, export text out)
# --------------------------------------------------------------------------


def refund_lines(by_month: dict) -> list[str]:
    """README bullet per 退回 row (both example funds list their refunds)."""
    return [
        f"- {p.pay_date} {p.unit} {p.voucher_no} {yuan(p.amount_fen)} — {p.memo}"
        for rows in by_month.values()
        for p in rows
        if p.kind == "退回"
    ]


def yuan(fen: int) -> str:
    """Exact '1234.50' (always 2 decimals, no separators)."""
    sign = "-" if fen < 0 else ""
    q, r = divmod(abs(fen), 100)
    return f"{sign}{q}.{r:02d}"


def yuan_thousands(fen: int) -> str:
    """'1,234.50' as bank/treasury exports print it."""
    sign = "-" if fen < 0 else ""
    q, r = divmod(abs(fen), 100)
    return f"{sign}{q:,}.{r:02d}"


def yuan_plain(fen: int) -> str:
    """Minimal form '1234.5' / '1200' (what a spreadsheet 'General' cell gives)."""
    text = yuan(fen)
    return text.rstrip("0").rstrip(".")


def yuan_suffix(fen: int) -> str:
    return yuan(fen) + "元"


def yuan_float(fen: int) -> float:
    # Only for XLSX numeric cells: an export stores amounts as doubles.
    return float(yuan(fen))


def date_iso(d: dt.date) -> str:
    return d.isoformat()


def date_slash(d: dt.date) -> str:
    return f"{d.year}/{d.month}/{d.day}"


def date_zh(d: dt.date) -> str:
    return f"{d.year}年{d.month}月{d.day}日"


def pct_text(fen: int, total: int) -> str:
    return f"{fen * 100 / total:.2f}"


# --------------------------------------------------------------------------
# Deterministic writers
# --------------------------------------------------------------------------


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[object]], encoding: str) -> None:
    """CSV as Excel writes it on Windows: CRLF, minimal quoting."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue().encode(encoding))


def write_xlsx(
    path: Path,
    header: Sequence[str],
    rows: Sequence[Sequence[object]],
    sheet_title: str,
    formats: dict[int, str] | None = None,
) -> None:
    """First sheet only; fixed document times and zip timestamps (stable bytes)."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = sheet_title
    ws.append(list(header))
    for row in rows:
        ws.append(list(row))
    for col, fmt in (formats or {}).items():
        for (cell,) in ws.iter_rows(min_row=2, min_col=col, max_col=col):
            cell.number_format = fmt
    for idx, name in enumerate(header, start=1):
        ws.column_dimensions[openpyxl.utils.get_column_letter(idx)].width = max(12, 2 * len(name) + 4)
    wb.properties.creator = "budget-monitor example generator"
    wb.properties.created = FIXED_TIME
    wb.properties.modified = FIXED_TIME
    raw = io.BytesIO()
    wb.save(raw)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_restamp_zip(raw.getvalue()))


def _restamp_zip(data: bytes) -> bytes:
    out = io.BytesIO()
    stamp = FIXED_TIME.strftime("%Y-%m-%dT%H:%M:%SZ").encode()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=FIXED_TIME.timetuple()[:6])
            fixed.compress_type = zipfile.ZIP_DEFLATED
            fixed.external_attr = 0o600 << 16
            payload = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                # openpyxl stamps 'modified' with the wall clock at save time.
                payload = re.sub(rb"(<dcterms:modified[^>]*>)[^<]*", rb"\g<1>" + stamp, payload)
            dst.writestr(fixed, payload)
    return out.getvalue()


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8"))


def write_yaml(path: Path, data: dict, comment: str) -> None:
    body = yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=100000, default_flow_style=False)
    write_text(path, comment + body)


def clean_generated(dest: Path) -> None:
    for sub in GENERATED_DIRS:
        folder = dest / sub
        if folder.is_dir():
            for f in folder.iterdir():
                if f.is_file():
                    f.unlink()


# --------------------------------------------------------------------------
# Shared building blocks
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Unit:
    name: str
    code: str  # administrative division code, used in voucher / sample numbers
    doc_no: str  # allocation its payments are charged to by default


@dataclass
class Payment:
    voucher_no: str
    unit: str
    doc_no: str
    amount_fen: int
    pay_date: dt.date
    kind: str  # 支付 / 退回
    econ_class: str
    memo: str
    payee: str


@dataclass
class Voucher:
    seq: dict[str, int] = field(default_factory=dict)

    def next(self, unit: Unit, prefix: str, year: int) -> str:
        n = self.seq.get(unit.code + prefix, 0) + 1
        self.seq[unit.code + prefix] = n
        return f"{unit.code}{prefix}{year}{n:05d}"


# (经济分类, 摘要 choices, payee) by size band: large, medium, small.
ECON_LARGE = [
    (
        "30227 委托业务费",
        [
            "委托广东省药品检验所药品检验费",
            "委托江门市食品药品检验所抽检检验费",
            "医疗器械委托检验费",
            "化妆品委托检验费",
        ],
        "检验机构",
    ),
    (
        "31002 办公设备购置",
        ["购置执法记录仪及配套存储设备", "购置便携式计算机及打印设备", "购置移动执法终端"],
        "供应商",
    ),
    (
        "31003 专用设备购置",
        ["购置药品快速检测设备", "购置便携式拉曼光谱快检仪", "购置冷链温度记录仪及监测平台"],
        "供应商",
    ),
]
ECON_MEDIUM = [
    (
        "30227 委托业务费",
        ["抽检样品检验费", "药品稽查案件涉案物品检验费", "委托第三方开展药品安全风险监测"],
        "检验机构",
    ),
    (
        "30216 培训费",
        ["药品监管干部业务培训班培训费", "药品稽查执法能力培训费", "医疗器械监管专题培训费"],
        "培训承办单位",
    ),
    ("30202 印刷费", ["印制药品监督抽检文书", "印制执法文书及宣传资料"], "印刷厂"),
    ("30299 其他商品和服务支出", ["抽检样品购置费", "药品抽检样品费"], "被抽样单位"),
    ("31002 办公设备购置", ["购置执法记录仪", "购置取证相机"], "供应商"),
]
ECON_SMALL = [
    ("30201 办公费", ["购买办公用品", "打印耗材", "抽样用封条、样品袋"], "供应商"),
    ("30211 差旅费", ["抽样人员差旅费", "赴广州参加省局药品监管培训差旅费", "案件协查差旅费"], "报销人"),
    ("30231 公务用车运行维护费", ["执法车辆燃油费", "执法车辆通行费"], "加油站"),
    ("30226 劳务费", ["专家咨询评审劳务费", "案件技术鉴定劳务费"], "专家"),
    ("30299 其他商品和服务支出", ["抽检样品购置费", "样品寄送快递费"], "被抽样单位"),
]
DRUG_BANDS = (ECON_LARGE, ECON_MEDIUM, ECON_SMALL)
FOOD_BANDS = (
    [
        ("30227 委托业务费", ["委托第三方检验机构开展食品抽检", "食品安全风险监测委托检验费"], "检验机构"),
        ("31003 专用设备购置", ["购置食品快检设备", "购置农药残留快速检测仪"], "供应商"),
    ],
    [
        ("30227 委托业务费", ["食品抽检检验费", "食品安全评价性抽检检验费"], "检验机构"),
        ("30216 培训费", ["基层食品安全监管人员培训费", "食品安全快检技术培训费"], "培训承办单位"),
        ("30202 印刷费", ["印制食品安全宣传资料", "印制食品抽检文书"], "印刷厂"),
        ("30299 其他商品和服务支出", ["食品抽检样品购置费"], "被抽样单位"),
    ],
    [
        ("30201 办公费", ["购买办公用品", "抽样用封条、样品袋"], "供应商"),
        ("30211 差旅费", ["抽样人员差旅费", "参加省局食品安全培训差旅费"], "报销人"),
        ("30231 公务用车运行维护费", ["执法车辆燃油费"], "加油站"),
        ("30299 其他商品和服务支出", ["快检试剂耗材", "样品寄送快递费"], "被抽样单位"),
    ],
)
Bands = tuple[list, list, list]

PAYEES = {
    "检验机构": ["广东省药品检验所", "江门市食品药品检验所", "广东省医疗器械质量监督检验所"],
    "供应商": ["政府采购中标供应商", "协议供货商"],
    "培训承办单位": ["江门市委党校", "培训承办单位"],
    "印刷厂": ["定点印刷单位"],
    "被抽样单位": ["被抽样单位（汇总支付）"],
    "报销人": ["单位职工（公务卡还款）"],
    "加油站": ["定点加油站"],
    "专家": ["评审专家（汇总发放）"],
}


def workdays(year: int, month: int) -> list[dt.date]:
    """Official working days (holidays and 调休 from chinese-calendar): treasury pays on these only."""
    days = calendar.monthrange(year, month)[1]
    return [dt.date(year, month, d) for d in range(1, days + 1) if chinese_calendar.is_workday(dt.date(year, month, d))]


def split_amount(rng: random.Random, total: int, n: int) -> list[int]:
    """Split ``total`` fen into ``n`` positive parts (most rounded to 10 yuan)."""
    n = max(1, min(n, total // 50000))  # no part under ~500 yuan
    if n == 1:
        return [total]
    weights = [rng.uniform(0.2, 1.0) ** 2 for _ in range(n)]
    s = sum(weights)
    parts = []
    for w in weights[:-1]:
        part = int(total * w / s)
        if rng.random() < 0.6:
            part -= part % 1000  # round to 10 yuan, like most invoices
        parts.append(max(part, 10000))
    parts.append(total - sum(parts))
    if parts[-1] <= 0:  # pathological draw: fall back to an even split
        base = total // n
        parts = [base] * (n - 1) + [total - base * (n - 1)]
    return parts


def econ_for(rng: random.Random, amount: int, month: int, bands: Bands) -> tuple[str, str, str]:
    large, medium, small = bands
    if amount >= 5_000_000:
        band = large if month >= 6 else large[:1]  # equipment is bought from mid-year
    elif amount >= 1_000_000:
        band = medium
    else:
        band = small
    econ, memos, payee_kind = rng.choice(band)
    return econ, rng.choice(memos), rng.choice(PAYEES[payee_kind])


def month_payments(
    rng: random.Random,
    vouchers: Voucher,
    year: int,
    month: int,
    unit: Unit,
    net_fen: int,
    n_rows: int,
    refund: tuple[Payment, int] | None,
    doc_for: Callable[[dt.date], str],
    bands: Bands,
) -> list[Payment]:
    """Rows of one unit in one month whose net sum is exactly ``net_fen``.

    ``refund``: (original payment, refunded fen). The refund is a separate
    negative 退回 row; the gross payments are raised so the net stays exact.
    """
    days = workdays(year, month)
    gross = net_fen + (refund[1] if refund else 0)
    rows: list[Payment] = []
    for amount in split_amount(rng, gross, n_rows):
        day = rng.choice(days)
        econ, memo, payee = econ_for(rng, amount, month, bands)
        rows.append(
            Payment(vouchers.next(unit, "ZF", year), unit.name, doc_for(day), amount, day, "支付", econ, memo, payee)
        )
    if refund:
        orig, amount = refund
        day = max(days[-3:][rng.randrange(3)], orig.pay_date)
        rows.append(
            Payment(
                vouchers.next(unit, "TH", year),
                unit.name,
                orig.doc_no,
                -amount,
                day,
                "退回",
                orig.econ_class,
                f"退回：{orig.memo}（原凭证{orig.voucher_no}）",
                orig.payee,
            )
        )
    # Month-end surge realism: keep the export sorted by date then voucher.
    rows.sort(key=lambda p: (p.pay_date, p.voucher_no))
    return rows


def build_payments(
    rng: random.Random,
    year: int,
    units: Sequence[Unit],
    cumulative: dict[str, list[int]],
    rows_per_month: dict[str, tuple[int, int]],
    refunds: dict[tuple[int, str], tuple[int, int]],
    doc_for: Callable[[Unit, dt.date], str],
    bands: Bands = DRUG_BANDS,
) -> dict[int, list[Payment]]:
    """Per-month payment rows from per-unit cumulative fen (index 0 = Jan).

    ``refunds``: (month, unit name) -> (month of the refunded payment, share
    in per mille of that payment refunded).
    """
    vouchers = Voucher()
    by_month: dict[int, list[Payment]] = {}
    history: dict[str, list[Payment]] = {u.name: [] for u in units}
    for month in range(1, 13):
        rows: list[Payment] = []
        for unit in units:
            cum = cumulative[unit.name]
            net = cum[month - 1] - (cum[month - 2] if month > 1 else 0)
            assert net > 0, (unit.name, month, net)
            refund = None
            if (month, unit.name) in refunds:
                src_month, per_mille = refunds[(month, unit.name)]
                candidates = [p for p in history[unit.name] if p.pay_date.month == src_month and p.kind == "支付"]
                orig = max(candidates, key=lambda p: (p.amount_fen, p.voucher_no))
                amount = orig.amount_fen * per_mille // 1000
                amount -= amount % 100  # refunds are whole yuan
                refund = (orig, amount)
            lo, hi = rows_per_month[unit.name]
            unit_rows = month_payments(
                rng,
                vouchers,
                year,
                month,
                unit,
                net,
                rng.randint(lo, hi),
                refund,
                lambda d, u=unit: doc_for(u, d),
                bands,
            )
            history[unit.name].extend(unit_rows)
            rows.extend(unit_rows)
        rows.sort(key=lambda p: (p.pay_date, p.voucher_no))
        by_month[month] = rows
    return by_month


@dataclass
class Sample:
    sample_no: str
    sample_date: dt.date
    category: str
    product: str
    stage: str
    unit: str
    result: str


def quarter_days(year: int, quarter: int, months: Sequence[int] | None = None) -> list[dt.date]:
    months = months or range(3 * quarter - 2, 3 * quarter + 1)
    return [d for m in months for d in workdays(year, m)]


# --------------------------------------------------------------------------
# jiangmen-2021: the seed report's fund
# --------------------------------------------------------------------------

JM_YEAR = 2021
JM_NAME = "2021年促进经济高质量发展专项资金（市场监督管理-药品监督管理）"
JM_CITY = Unit("江门市市场监督管理局", "440700", "江财工〔2021〕12号")
JM_TAISHAN = Unit("台山市市场监督管理局", "440781", "江财工〔2021〕13号")
JM_KAIPING = Unit("开平市市场监督管理局", "440783", "江财工〔2021〕13号")
JM_ENPING = Unit("恩平市市场监督管理局", "440785", "江财工〔2021〕13号")
JM_UNITS = (JM_CITY, JM_TAISHAN, JM_KAIPING, JM_ENPING)

# 年初 allocations in fen (total 3,720,900.00 元 = 372.09 万元).
JM_ALLOC = {
    JM_CITY.name: 162_090_000,
    JM_TAISHAN.name: 78_000_000,
    JM_KAIPING.name: 70_000_000,
    JM_ENPING.name: 62_000_000,
}
JM_TOTAL = 372_090_000

# Intended fund-level cumulative execution rate (%) at each month end.
# Q1 26.4 >= 25 (on pace); Q2 38.2 < 50 and Q3 62.1 < 75 (lagging, as the
# seed report says); Q4 100. January is just above pace, the other months
# behind: a realistic slow start after the Q1 push.
JM_FUND_RATES = ["8.6", "14.9", "26.4", "30.1", "34.8", "38.2", "44.5", "53.0", "62.1", "71.8", "84.0", "100"]
# County bureaus' cumulative rates (% of their own allocation); the city
# bureau takes the remainder of the fund-level path.
JM_COUNTY_RATES = {
    JM_TAISHAN.name: [5, 10, 22, 25, 28, 31, 38, 47, 57, 68, 80, 100],
    JM_KAIPING.name: [9, 16, 27, 31, 36, 40, 46, 55, 64, 73, 85, 100],
    JM_ENPING.name: [4, 9, 20, 23, 26, 29, 35, 44, 55, 66, 79, 100],
}

JM_GOAL_PARAGRAPHS = [
    "根据省局年度省抽计划制定科学合理的抽检方案，按时按质量完成本市省抽计划批次；通过开展药品、化妆品、医疗器械（以下统称药品）质量抽验，发现、降低和消除不合格药品导致的安全风险。",
    "提升基层药品执法检查装备水平，对标《全国药品监督管理系统执法检查基本装备配备指导标准》，按照轻重缓急，分步开展地市级、县级标准化配置，2021年台山、开平、恩平药品执法检查基本装备类装备品种覆盖率达到70%，装备数量满足监管工作基本需要。",
    "严查一批违法违规行为，彻查一批大案要案、移送一批刑事案件，形成高压态势和震慑作用，严厉打击药品安全违法犯罪，台山、开平、恩平大要案查办率达100%。",
    "组织开展各类药品监管干部培训，着力培养造就一支高素质、专业化的药品监管队伍，台山、开平、恩平药品监管在职干部参加培训率达到70%。",
]


def _pct(name: str) -> str:
    # Works whether the measured text is "70" or "70%".
    return "{{ actual['" + name + "'] | replace('%', '') }}%"


def _num(name: str) -> str:
    return "{{ actual['" + name + "'] }}"


JM_ACHIEVEMENT_TEMPLATES = [
    "根据省局年度省抽计划制定科学合理的抽检方案，按时按质量完成本市药品抽检"
    + _num("药品抽检批次")
    + "批次，药包材抽检（抽样）"
    + _num("药包材抽检批次")
    + "批次，化妆品抽检"
    + _num("化妆品抽检批次")
    + "批次，医疗器械抽检"
    + _num("医疗器械抽检批次")
    + "批次，发现、降低和消除不合格药品导致的安全风险。",
    "提升基层药品执法检查装备水平，对标《全国药品监督管理系统执法检查基本装备配备指导标准》，2021年台山市市场监管局、开平市场监管局、恩平市场监管局的药品执法检查基本装备类装备品种覆盖率达到"
    + _pct("装备品种覆盖率")
    + "，装备数量满足监管工作基本需要。",
    "台山市场监管局、开平市场监管局、恩平市场监管局严格贯彻落实《广东省药品监督管理局办公室关于印发2021年度全省药品稽查执法及综合监管项目实施方案的通知》和《2021年江门市市场监督管理局执法监督工作要点》，严查一批违法违规行为，彻查一批大案要案、达到刑事标准的案件及时移送公安部门，形成高压态势和震慑作用，严厉打击药品安全违法犯罪，进一步规范药品生产和流通秩序，净化市场，确保人民群众用药安全，台山、开平、恩平大要案查办率达"
    + _pct("大要案查办率")
    + "。",
    "台山市场监管局、开平市场监管局、恩平市场监管局组织开展药品监管干部参加1天以上脱产培训"
    + _num("药品监管干部培训人次")
    + "人次，着力培养造就一支高素质、专业化的药品监管队伍，台山、开平、恩平药品监管在职干部参加培训率达到"
    + _pct("在职干部参加培训率")
    + "。",
]

# (一级, 二级, 三级, 指标值, 分值): 90 points + 预算执行率 10 = 100.
JM_GOALS = [
    ("产出指标", "数量指标", "药品抽检批次", "≥550批次", "15"),
    ("产出指标", "数量指标", "药包材抽检批次", "≥9批次", "5"),
    ("产出指标", "数量指标", "化妆品抽检批次", "≥30批次", "5"),
    ("产出指标", "数量指标", "医疗器械抽检批次", "≥55批次", "10"),
    ("产出指标", "数量指标", "药品监管干部培训人次", "≥372人次", "10"),
    ("产出指标", "质量指标", "装备品种覆盖率", "≥70%", "10"),
    ("产出指标", "质量指标", "在职干部参加培训率", "≥70%", "10"),
    ("效益指标", "社会效益指标", "大要案查办率", "=100%", "15"),
    ("满意度指标", "服务对象满意度指标", "服务对象满意度", "≥85%", "10"),
]

JM_BATCHES = {"药品": 550, "药包材": 9, "化妆品": 30, "医疗器械": 55}
# Per quarter counts (sum = JM_BATCHES) and 不合格 counts for the year.
JM_BATCHES_BY_QUARTER = {
    "药品": [120, 160, 150, 120],
    "药包材": [2, 3, 3, 1],
    "化妆品": [6, 9, 9, 6],
    "医疗器械": [10, 15, 18, 12],
}
JM_FAILED = {"药品": 8, "药包材": 0, "化妆品": 2, "医疗器械": 3}
JM_SAMPLE_PREFIX = {"药品": "YP", "药包材": "BC", "化妆品": "HZ", "医疗器械": "QX"}
JM_PRODUCTS = {
    "药品": [
        "阿莫西林胶囊",
        "复方甘草片",
        "板蓝根颗粒",
        "维生素C片",
        "布洛芬缓释胶囊",
        "头孢克肟分散片",
        "六味地黄丸",
        "感冒灵颗粒",
        "藿香正气水",
        "蒙脱石散",
        "盐酸二甲双胍片",
        "硝苯地平缓释片",
        "陈皮（中药饮片）",
        "黄芪（中药饮片）",
        "葡萄糖注射液",
        "氯化钠注射液",
    ],
    "药包材": ["口服固体药用高密度聚乙烯瓶", "药用铝箔", "聚氯乙烯固体药用硬片", "药用低硼硅玻璃管制注射剂瓶"],
    "化妆品": ["保湿乳液", "防晒霜", "洗发水", "染发剂", "祛斑霜", "面膜", "儿童润肤霜"],
    "医疗器械": [
        "医用外科口罩",
        "一次性使用无菌注射器",
        "医用防护服",
        "电子体温计",
        "一次性使用医用橡胶检查手套",
        "医用退热贴",
        "一次性使用输液器",
    ],
}
JM_STAGES = ["经营", "经营", "经营", "使用", "使用", "生产"]
JM_SAMPLE_UNIT_WEIGHTS = [(JM_CITY, 40), (JM_TAISHAN, 22), (JM_KAIPING, 20), (JM_ENPING, 18)]

# Training 人次 per month and county (sum 372), and the fund-level rows of
# the 'latest' indicators (written by the city bureau as 三地汇总).
JM_TRAINING = {
    3: (20, 18, 12),
    5: (25, 22, 15),
    6: (30, 26, 20),
    7: (18, 16, 12),
    9: (22, 20, 14),
    10: (15, 14, 11),
    11: (16, 15, 11),
}
JM_LATEST = {
    "在职干部参加培训率": {3: "18%", 6: "42%", 9: "58%", 11: "66%", 12: "70%"},
    "装备品种覆盖率": {6: "40%", 9: "55%", 12: "70%"},
    "大要案查办率": {6: "100%", 9: "100%", 12: "100%"},
    "服务对象满意度": {12: "93.6%"},
}
JM_LATEST_NOTES = {
    "在职干部参加培训率": "台山、开平、恩平三地汇总：参训在职干部人数÷在职干部总数",
    "装备品种覆盖率": "台山、开平、恩平三地汇总：已配备基本装备品种÷指导标准品种",
    "大要案查办率": "台山、开平、恩平三地汇总：已查办大要案÷立案大要案",
    "服务对象满意度": "问卷调查，有效问卷246份",
}

# Refunds: (month, unit) -> (month of the refunded payment, per mille refunded).
JM_REFUNDS = {
    (4, JM_TAISHAN.name): (3, 150),
    (7, JM_CITY.name): (6, 100),
    (8, JM_KAIPING.name): (7, 200),
    (10, JM_ENPING.name): (9, 120),
    (12, JM_CITY.name): (11, 80),
}

PAY_HEADER_GBK = ["序号", "支付凭证号", "支付日期", "预算单位", "指标文号", "经济分类", "摘要", "支付金额", "业务类型"]
PAY_HEADER_BOM = ["支付凭证号", "预算单位", "指标文号", "支付金额", "支付日期", "业务类型", "经济分类", "摘要"]
PAY_HEADER_XLSX = [
    "支付凭证号",
    "预算单位",
    "指标文号",
    "收款人",
    "支付金额",
    "支付日期",
    "业务类型",
    "经济分类",
    "摘要",
]


def jm_cumulative() -> dict[str, list[int]]:
    """Per-unit cumulative fen at each month end; asserts the intended shape."""
    fund = []
    for rate in JM_FUND_RATES:
        exact = Decimal(JM_TOTAL) * Decimal(rate) / 100
        assert exact == exact.to_integral_value(), rate  # rates chosen to land on whole fen
        fund.append(int(exact))
    cum: dict[str, list[int]] = {}
    for name, rates in JM_COUNTY_RATES.items():
        cum[name] = [JM_ALLOC[name] * r // 100 for r in rates]
    cum[JM_CITY.name] = [fund[m] - sum(cum[n][m] for n in JM_COUNTY_RATES) for m in range(12)]
    for name, path in cum.items():
        assert all(b > a for a, b in zip(path, path[1:])), name
        assert path[0] > 0 and path[-1] == JM_ALLOC[name], name
    assert fund[-1] == JM_TOTAL
    return dict((u.name, cum[u.name]) for u in JM_UNITS)


def jm_fund_yaml() -> dict:
    measures: dict[str, dict] = {}
    for cat in JM_BATCHES:
        measures[f"{cat}抽检批次"] = {"source": "inspections", "agg": "count", "where": {"category": cat}}
    measures["药品监管干部培训人次"] = {"source": "outputs", "agg": "sum"}
    for name in JM_LATEST:
        measures[name] = {"source": "outputs", "agg": "latest", "unit": JM_CITY.name}
    return {
        "code": "JM-2021-YPJG",
        "name": JM_NAME,
        "short_name": "药品监督管理",
        "year": JM_YEAR,
        "department": "江门市市场监督管理局",
        "region": "江门市",
        "uses": "稽查执法及综合管理、地方队伍能力建设、药品医疗器械化妆品抽检和药品监管能力建设工作",
        "goal_paragraphs": JM_GOAL_PARAGRAPHS,
        "achievement_templates": JM_ACHIEVEMENT_TEMPLATES,
        "basis_document": "《广东省药品监督管理局办公室关于开展2022年省级财政资金项目支出绩效自评工作的通知》（粤药监办〔2022〕142号）",
        # The cause the finance office gave for the Q2 lag (seed report, 存在问题).
        "lag_causes": {2: "部分项目启动较晚"},
        "recipients": ["caiwu@scjgj.jiangmen.example.cn", "yaojianke@scjgj.jiangmen.example.cn"],
        "inspection_categories": list(JM_BATCHES),
        "pace": {"policy": "linear_month", "tolerance": 0, "red_gap": 20},
        "scoring": {"execution_weight": 10},
        "measures": measures,
    }


def jm_payment_files(dest: Path, by_month: dict[int, list[Payment]]) -> None:
    for month, rows in by_month.items():
        stem = f"{JM_YEAR}-{month:02d}_支出明细"
        if month <= 4:
            # Treasury system export, GBK, "1,234.50", dates 2021/1/5 or 2021年3月5日.
            fmt_date = date_slash if month <= 2 else date_zh
            table = [
                [
                    i,
                    p.voucher_no,
                    fmt_date(p.pay_date),
                    p.unit,
                    p.doc_no,
                    p.econ_class,
                    p.memo,
                    yuan_thousands(p.amount_fen),
                    p.kind,
                ]
                for i, p in enumerate(rows, start=1)
            ]
            write_csv(dest / "payments" / f"{stem}.csv", PAY_HEADER_GBK, table, "gbk")
        elif month <= 8:
            # Re-saved from Excel as "CSV UTF-8": BOM, plain numbers; July's has 元.
            fmt_money = yuan_suffix if month == 7 else yuan_plain
            table = [
                [
                    p.voucher_no,
                    p.unit,
                    p.doc_no,
                    fmt_money(p.amount_fen),
                    date_iso(p.pay_date),
                    p.kind,
                    p.econ_class,
                    p.memo,
                ]
                for p in rows
            ]
            write_csv(dest / "payments" / f"{stem}.csv", PAY_HEADER_BOM, table, "utf-8-sig")
        else:
            table = [
                [
                    p.voucher_no,
                    p.unit,
                    p.doc_no,
                    p.payee,
                    yuan_float(p.amount_fen),
                    dt.datetime.combine(p.pay_date, dt.time()),
                    p.kind,
                    p.econ_class,
                    p.memo,
                ]
                for p in rows
            ]
            write_xlsx(
                dest / "payments" / f"{stem}.xlsx", PAY_HEADER_XLSX, table, "支出明细", {5: "#,##0.00", 6: "yyyy-mm-dd"}
            )


def jm_samples(rng: random.Random) -> dict[int, list[Sample]]:
    units = [u for u, w in JM_SAMPLE_UNIT_WEIGHTS for _ in range(w)]
    seq: dict[tuple[str, str], int] = {}
    by_quarter: dict[int, list[Sample]] = {q: [] for q in range(1, 5)}
    for cat, per_q in JM_BATCHES_BY_QUARTER.items():
        samples: list[Sample] = []
        for q, count in enumerate(per_q, start=1):
            days = quarter_days(JM_YEAR, q)
            for _ in range(count):
                unit = rng.choice(units)
                key = (cat, unit.code)
                seq[key] = seq.get(key, 0) + 1
                no = f"{JM_SAMPLE_PREFIX[cat]}{JM_YEAR}{unit.code}{seq[key]:04d}"
                samples.append(
                    Sample(
                        no,
                        rng.choice(days),
                        cat,
                        rng.choice(JM_PRODUCTS[cat]),
                        rng.choice(JM_STAGES),
                        unit.name,
                        "合格",
                    )
                )
        for s in rng.sample(samples, JM_FAILED[cat]):
            s.result = "不合格"
        for s in samples:
            by_quarter[(s.sample_date.month - 1) // 3 + 1].append(s)
    for rows in by_quarter.values():
        rows.sort(key=lambda s: (s.sample_date, s.sample_no))
    return by_quarter


INSP_HEADER = ["抽样单号", "抽样日期", "品种类别", "样品名称", "抽样环节", "抽检单位", "检验结论"]


def jm_inspection_files(dest: Path, by_quarter: dict[int, list[Sample]]) -> None:
    # Q1 UTF-8 (no BOM), Q2 GBK, Q3 XLSX, Q4 UTF-8 with BOM.
    plan = {1: ("utf-8", date_iso), 2: ("gbk", date_slash), 4: ("utf-8-sig", date_zh)}
    for q, rows in by_quarter.items():
        stem = f"{JM_YEAR}-Q{q}_抽检记录"
        if q == 3:
            table = [
                [
                    s.sample_no,
                    dt.datetime.combine(s.sample_date, dt.time()),
                    s.category,
                    s.product,
                    s.stage,
                    s.unit,
                    s.result,
                ]
                for s in rows
            ]
            write_xlsx(dest / "inspections" / f"{stem}.xlsx", INSP_HEADER, table, "抽检记录", {2: "yyyy/m/d"})
        else:
            enc, fmt = plan[q]
            table = [[s.sample_no, fmt(s.sample_date), s.category, s.product, s.stage, s.unit, s.result] for s in rows]
            write_csv(dest / "inspections" / f"{stem}.csv", INSP_HEADER, table, enc)


OUT_HEADER = ["月份", "预算单位", "三级指标", "完成值", "备注"]


def jm_output_files(dest: Path) -> None:
    months = sorted(set(JM_TRAINING) | {m for v in JM_LATEST.values() for m in v})
    counties = (JM_TAISHAN, JM_KAIPING, JM_ENPING)
    for month in months:
        ym = f"{JM_YEAR}-{month:02d}"
        rows: list[list[object]] = []
        for unit, n in zip(counties, JM_TRAINING.get(month, ())):
            rows.append([ym, unit.name, "药品监管干部培训人次", str(n), "参加1天以上脱产培训"])
        for name, series in JM_LATEST.items():
            if month in series:
                rows.append([ym, JM_CITY.name, name, series[month], JM_LATEST_NOTES[name]])
        stem = f"{ym}_产出数据"
        if month == 6:
            write_xlsx(dest / "outputs" / f"{stem}.xlsx", OUT_HEADER, rows, "产出数据")
        elif month == 7:
            write_csv(dest / "outputs" / f"{stem}.csv", OUT_HEADER, rows, "gbk")
        elif month >= 9:
            write_csv(dest / "outputs" / f"{stem}.csv", OUT_HEADER, rows, "utf-8-sig")
        else:
            write_csv(dest / "outputs" / f"{stem}.csv", OUT_HEADER, rows, "utf-8")


def make_jiangmen(dest: Path) -> None:
    """Write the jiangmen-2021 fund directory into ``dest``."""
    rng = random.Random(SEED)
    dest.mkdir(parents=True, exist_ok=True)
    clean_generated(dest)
    cum = jm_cumulative()

    write_yaml(
        dest / "fund.yaml",
        jm_fund_yaml(),
        "# Example fund: the seed report's fund (generated by scripts/make_example_fund.py; do not edit by hand).\n",
    )
    write_csv(dest / "goals.csv", ["一级指标", "二级指标", "三级指标", "指标值", "分值"], JM_GOALS, "utf-8-sig")
    budget_rows = [
        [JM_CITY.doc_no, JM_CITY.name, "2021-01-04", yuan_thousands(JM_ALLOC[JM_CITY.name]), "年初"],
        *[
            [u.doc_no, u.name, "2021-01-04", yuan_thousands(JM_ALLOC[u.name]), "年初"]
            for u in (JM_TAISHAN, JM_KAIPING, JM_ENPING)
        ],
    ]
    write_csv(dest / "budget.csv", ["指标文号", "预算单位", "下达日期", "金额", "类型"], budget_rows, "utf-8")

    by_month = build_payments(
        rng,
        JM_YEAR,
        JM_UNITS,
        cum,
        {JM_CITY.name: (6, 12), JM_TAISHAN.name: (3, 7), JM_KAIPING.name: (3, 7), JM_ENPING.name: (3, 6)},
        JM_REFUNDS,
        lambda unit, day: unit.doc_no,
    )
    jm_payment_files(dest, by_month)
    jm_inspection_files(dest, jm_samples(rng))
    jm_output_files(dest)
    write_text(dest / "README.md", jm_readme(cum, by_month))


def jm_readme(cum: dict[str, list[int]], by_month: dict[int, list[Payment]]) -> str:
    fund_cum = [sum(cum[u.name][m] for u in JM_UNITS) for m in range(12)]
    lines = [
        "# Example fund `jiangmen-2021`",
        "",
        "The seed report's fund (江门市市场监督管理局, " + JM_NAME + ") as a fund",
        "directory. **Generated** by `scripts/make_example_fund.py` (fixed seed, byte-identical",
        "on every run; XLSX files carry fixed timestamps). Do not edit by hand: change the",
        "script and regenerate (`python scripts/make_example_fund.py`).",
        "",
        "## fund.yaml",
        "",
        "| field | value |",
        "|---|---|",
        "| code | `JM-2021-YPJG` |",
        "| name / short_name | " + JM_NAME + " / 药品监督管理 |",
        "| year / department | 2021 / 江门市市场监督管理局 |",
        '| uses | the seed\'s 用途 sentence fragment ("该补助资金重点用于支持{uses}。") |',
        "| goal_paragraphs | the seed's four numbered 绩效目标 paragraphs, without the numbers |",
        "| achievement_templates | the seed's four 绩效目标完成情况 paragraphs as jinja2 templates over `actual[...]`; percent figures use `replace('%', '')` so they render whether the measured text is `70` or `70%` |",
        "| basis_document | 粤药监办〔2022〕142号 |",
        "| recipients | caiwu@ / yaojianke@scjgj.jiangmen.example.cn |",
        "| inspection_categories | 药品, 药包材, 化妆品, 医疗器械 |",
        "| pace | linear_month, tolerance 0, red_gap 20 |",
        "| scoring | execution_weight 10 (default grades) |",
        "| measures | four `inspections`/`count` by category; 培训人次 `outputs`/`sum`; 覆盖率, 培训率, 查办率, 满意度 `outputs`/`latest` of the 江门市市场监督管理局 rows (三地汇总) |",
        "",
        "## Budget (budget.csv, UTF-8, all 年初)",
        "",
        "| 预算单位 | 指标文号 | 金额（元） |",
        "|---|---|---|",
    ]
    for u in JM_UNITS:
        lines.append(f"| {u.name} | {u.doc_no} | {yuan(JM_ALLOC[u.name])} |")
    lines += [
        f"| **合计** | | **{yuan(JM_TOTAL)}** |",
        "",
        "年初预算数 = 全年预算数 = 3720900.00 元 (372.09 万元); 全年执行数 3720900.00 元, 执行率 100%.",
        "",
        "## Intended cumulative execution (fund level, % of 3720900.00)",
        "",
        "| month | pace | cumulative 元 | rate % | gap | payments rows | file |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in range(12):
        pace = f"{(m + 1) * 100 / 12:.2f}"
        rate = fund_cum[m] * 100 / JM_TOTAL
        gap = rate - (m + 1) * 100 / 12
        ext = "csv (GBK)" if m < 4 else ("csv (UTF-8 BOM)" if m < 8 else "xlsx")
        lines.append(
            f"| {JM_YEAR}-{m + 1:02d} | {pace} | {yuan(fund_cum[m])} | {rate:.2f} | {gap:+.2f} | "
            f"{len(by_month[m + 1])} | {ext} |"
        )
    lines += [
        "",
        "Quarters: Q1 26.40 ≥ 25 (not lagging), Q2 38.20 < 50 (lagging, gap −11.80),",
        "Q3 62.10 < 75 (lagging, gap −12.90), Q4 100.00 (not lagging): the seed's",
        '"第二季度和第三季度支出进度不达序时进度".',
        "",
        "## Per-unit cumulative execution (% of own allocation)",
        "",
        "| unit | " + " | ".join(f"{m:02d}" for m in range(1, 13)) + " |",
        "|---|" + "---|" * 12,
    ]
    for u in JM_UNITS:
        lines.append(f"| {u.name} | " + " | ".join(pct_text(c, JM_ALLOC[u.name]) for c in cum[u.name]) + " |")
    lines += ["", "Lagging quarters per unit (rate < pace at the quarter's last day, tolerance 0):", ""]
    for u in JM_UNITS:
        lag = [q for q in range(1, 5) if cum[u.name][3 * q - 1] * 4 < JM_ALLOC[u.name] * q]
        lines.append(f"- {u.name}: " + (", ".join(f"Q{q}" for q in lag) or "none"))
    lines += [
        "",
        "Each unit spends exactly its allocation by 2021-12-31.",
        "",
        "Refunds (业务类型 退回, negative amounts; the net monthly totals above already include them):",
        "",
    ]
    lines += refund_lines(by_month)
    lines += [
        "",
        "## Payment file formats",
        "",
        "- 2021-01..04: GBK CSV (treasury export), extra column 序号, amounts `1,234.50`,",
        "  dates `2021/1/5` (Jan, Feb) and `2021年3月5日` (Mar, Apr).",
        "- 2021-05..08: UTF-8 CSV with BOM, plain amounts `1234.5`; July's amounts carry `元`",
        "  (`1234.50元`); dates `2021-05-06`.",
        "- 2021-09..12: XLSX (first sheet 支出明细), numeric amounts, real Excel date cells,",
        "  extra column 收款人.",
        "",
        "## Goals (goals.csv, UTF-8 with BOM) and intended actuals",
        "",
        "| 一级 | 二级 | 三级 | 指标值 | 分值 | actual | score |",
        "|---|---|---|---|---|---|---|",
    ]
    actual = {
        "药品抽检批次": "550",
        "药包材抽检批次": "9",
        "化妆品抽检批次": "30",
        "医疗器械抽检批次": "55",
        "药品监管干部培训人次": "372",
        "装备品种覆盖率": "70%",
        "在职干部参加培训率": "70%",
        "大要案查办率": "100%",
        "服务对象满意度": "93.6%",
    }
    for l1, l2, name, target, weight in JM_GOALS:
        lines.append(f"| {l1} | {l2} | {name} | {target} | {weight} | {actual[name]} | {weight} |")
    lines += [
        "| 预算执行率 | | | 100% | 10 | 100% | 10 |",
        "",
        "Total **100**, grade **优** (the seed's score).",
        "",
        "## Inspections (抽检记录) and outputs (产出数据)",
        "",
        "- inspections/: one file per quarter (Q1 UTF-8 CSV, Q2 GBK CSV, Q3 XLSX, Q4 UTF-8 BOM CSV),",
        "  each file's rows dated inside its quarter. Batches per quarter: "
        + "; ".join(f"{c} {'+'.join(map(str, q))}={sum(q)}" for c, q in JM_BATCHES_BY_QUARTER.items())
        + ".",
        "  不合格: " + ", ".join(f"{c} {n}" for c, n in JM_FAILED.items()) + "; no 待检.",
        "- outputs/: months "
        + ", ".join(f"{m:02d}" for m in sorted(set(JM_TRAINING) | {m for v in JM_LATEST.values() for m in v}))
        + " (June XLSX, July GBK, others UTF-8 / UTF-8 BOM). 药品监管干部培训人次 rows per county",
        "  (sum 372); the 'latest' indicators are one 江门市市场监督管理局 row (三地汇总) per month",
        "  reported; December: 装备品种覆盖率 70%, 在职干部参加培训率 70%, 大要案查办率 100%, 服务对象满意度 93.6%.",
        "",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------
# second-fund-2022: a different shape for tests
# --------------------------------------------------------------------------

SF_YEAR = 2022
SF_NAME = "2022年食品安全监管能力提升专项资金"
SF_CITY = Unit("江门市市场监督管理局", "440700", "江财行〔2022〕8号")
SF_HESHAN = Unit("鹤山市市场监督管理局", "440784", "江财行〔2022〕8号")
SF_UNITS = (SF_CITY, SF_HESHAN)
SF_ADD_DOC = "江财行〔2022〕56号"
SF_CUT_DOC = "江财行〔2022〕88号"
# (指标文号, 预算单位, 下达日期, 金额 万元, 类型)
SF_BUDGET = [
    (SF_CITY.doc_no, SF_CITY.name, dt.date(2022, 1, 4), "80", "年初"),
    (SF_HESHAN.doc_no, SF_HESHAN.name, dt.date(2022, 1, 4), "40", "年初"),
    (SF_ADD_DOC, SF_CITY.name, dt.date(2022, 7, 15), "15", "追加"),
    (SF_CUT_DOC, SF_HESHAN.name, dt.date(2022, 10, 20), "10", "调减"),
]
SF_INITIAL = 120_000_000
SF_ADJUSTED = 125_000_000
SF_UNIT_BUDGET = {SF_CITY.name: 95_000_000, SF_HESHAN.name: 30_000_000}
# Cumulative net payments (fen). Fund: 48,000 ... 1,125,000 元 = 90% of 1,250,000.
SF_FUND_CUM = [
    4_800_000,
    12_000_000,
    21_600_000,
    30_000_000,
    40_200_000,
    54_000_000,
    69_000_000,
    83_000_000,
    101_250_000,
    106_250_000,
    110_000_000,
    112_500_000,
]
SF_HESHAN_CUM = [
    1_000_000,
    2_500_000,
    4_500_000,
    6_200_000,
    8_500_000,
    11_000_000,
    14_000_000,
    17_000_000,
    20_000_000,
    21_500_000,
    23_200_000,
    24_500_000,
]
SF_MILESTONES = {"03-31": 20, "06-30": 50, "09-30": 75, "12-31": 100}

SF_GOALS = [
    ("产出指标", "数量指标", "食品抽检批次", "≥400批次", "20"),
    ("产出指标", "数量指标", "食品安全培训人次", "≥300人次", "15"),
    ("产出指标", "质量指标", "抽检合格率", "≥97%", "10"),
    ("产出指标", "时效指标", "抽检结果按时报送率", "≥95%", "10"),
    ("成本指标", "成本指标", "人均培训成本", "≤400元/人天", "15"),
    ("效益指标", "社会效益指标", "食品安全事件发生数", "0起", "10"),
    ("满意度指标", "服务对象满意度指标", "服务对象满意度", "有效提升", "10"),
]
SF_SAMPLES_H = (150, 170)  # 320 食品 samples, below the 400 target
SF_FAILED = 10  # 310 / 320 = 96.875% 合格
SF_TRAINING = {4: (60, 30), 6: (45, 20), 9: (40, 20), 11: (25, 15)}  # sum 255
SF_OUTPUT_LATEST = {
    "抽检结果按时报送率": {6: ("92%", "按时报送批次÷应报送批次"), 12: ("90%", "全年按时报送288批次，应报送320批次")},
    "人均培训成本": {12: ("500", "培训费127500元÷255人天")},
    "食品安全事件发生数": {6: ("0", "上半年未发生区域性食品安全事件"), 12: ("0", "全年未发生区域性食品安全事件")},
    "服务对象满意度": {12: ("基本达成", "满意度测评较上年提升1.2个百分点，未达到预期提升幅度")},
}
SF_PRODUCTS = [
    "大米",
    "食用植物油",
    "酱油",
    "月饼",
    "生鲜乳",
    "鸡蛋",
    "猪肉",
    "蔬菜（叶菜类）",
    "瓶装饮用水",
    "糕点",
    "腌腊肉制品",
    "米粉",
]

SF_ACHIEVEMENT_TEMPLATES = [
    "全年完成食品抽检"
    + _num("食品抽检批次")
    + "批次，抽检合格率"
    + _pct("抽检合格率")
    + "，抽检结果按时报送率"
    + _pct("抽检结果按时报送率")
    + "。",
    "组织开展食品安全监管人员培训"
    + _num("食品安全培训人次")
    + "人次，人均培训成本"
    + _num("人均培训成本")
    + "元/人天。",
    "全年发生区域性食品安全事件" + _num("食品安全事件发生数") + "起，服务对象满意度" + _num("服务对象满意度") + "。",
]


def sf_fund_yaml() -> dict:
    return {
        "code": "JM-2022-SPAQ",
        "name": SF_NAME,
        "short_name": "食品安全监管",
        "year": SF_YEAR,
        "department": "江门市市场监督管理局",
        "uses": "食品安全抽检监测、基层食品安全监管人员培训和快检能力建设",
        "goal_paragraphs": [
            "按照年度食品安全抽检计划完成食品抽检400批次以上，抽检合格率不低于97%，抽检结果按时报送率不低于95%。",
            "组织开展基层食品安全监管人员培训300人次以上，人均培训成本控制在400元/人天以内。",
            "全年不发生区域性食品安全事件，服务对象满意度有效提升。",
        ],
        "achievement_templates": SF_ACHIEVEMENT_TEMPLATES,
        "basis_document": "《江门市财政局关于开展2022年度市级财政资金项目支出绩效自评工作的通知》",
        "recipients": ["caiwu@scjgj.jiangmen.example.cn", "spaq@scjgj.heshan.example.cn"],
        "inspection_categories": ["食品"],
        "pace": {"policy": "milestones", "milestones": SF_MILESTONES, "tolerance": 0},
        "measures": {
            "食品抽检批次": {"source": "inspections", "agg": "count", "where": {"category": "食品"}},
            "抽检合格率": {
                "source": "inspections",
                "agg": "ratio",
                "where": {"category": "食品", "result": "合格"},
                "denominator_where": {"category": "食品"},
            },
            "食品安全培训人次": {"source": "outputs", "agg": "sum"},
            "抽检结果按时报送率": {"source": "outputs", "agg": "latest"},
            "人均培训成本": {"source": "outputs", "agg": "latest"},
            "食品安全事件发生数": {"source": "outputs", "agg": "latest"},
            "服务对象满意度": {"source": "qualitative"},
        },
    }


def sf_charge_addition(by_month: dict[int, list[Payment]]) -> int:
    """Charge some of the city bureau's Aug/Sep payments to the 追加 allocation.

    Greedy in date order up to its 15 万元; Aug/Sep only, so no refund row
    (Nov, of an Oct payment) points at a re-charged payment.
    """
    used = 0
    for month in (8, 9):
        for p in by_month[month]:
            if (
                p.unit == SF_CITY.name
                and p.kind == "支付"
                and p.pay_date.day >= 15
                and used + p.amount_fen <= 15_000_000
            ):
                p.doc_no = SF_ADD_DOC
                used += p.amount_fen
    return used


def make_second_fund(dest: Path) -> None:
    """Write the second-fund-2022 fund directory into ``dest``."""
    rng = random.Random(SEED + 1)
    dest.mkdir(parents=True, exist_ok=True)
    clean_generated(dest)
    cum = {SF_HESHAN.name: SF_HESHAN_CUM, SF_CITY.name: [f - h for f, h in zip(SF_FUND_CUM, SF_HESHAN_CUM)]}
    assert cum[SF_CITY.name][5] <= 80_000_000  # within 年初 before the 追加
    assert SF_HESHAN_CUM[-1] <= SF_UNIT_BUDGET[SF_HESHAN.name]

    write_yaml(
        dest / "fund.yaml",
        sf_fund_yaml(),
        "# Second example fund (milestone pace, 追加/调减, partly met goals); generated by\n"
        "# scripts/make_example_fund.py, do not edit by hand.\n",
    )
    write_xlsx(
        dest / "goals.xlsx",
        ["一级指标", "二级指标", "三级指标", "指标值", "分值"],
        [[a, b, c, d, int(e)] for a, b, c, d, e in SF_GOALS],
        "绩效目标表",
    )
    write_xlsx(
        dest / "budget.xlsx",
        ["指标文号", "预算单位", "下达日期", "金额（万元）", "类型"],
        [[d, u, dt.datetime.combine(day, dt.time()), int(a), k] for d, u, day, a, k in SF_BUDGET],
        "预算指标",
        {3: "yyyy-mm-dd", 4: "0.00"},
    )

    by_month = build_payments(
        rng,
        SF_YEAR,
        SF_UNITS,
        cum,
        {SF_CITY.name: (3, 6), SF_HESHAN.name: (2, 4)},
        {(5, SF_HESHAN.name): (4, 250), (11, SF_CITY.name): (10, 100)},
        lambda unit, day: unit.doc_no,
        FOOD_BANDS,
    )
    added = sf_charge_addition(by_month)
    assert 0 < added <= 15_000_000, added
    english = ["voucher_no", "unit", "doc_no", "amount", "pay_date", "kind", "econ_class", "memo"]
    chinese = ["支付凭证号", "预算单位", "指标文号", "支付金额", "支付日期", "业务类型", "经济分类", "摘要"]
    for month, rows in by_month.items():
        money = yuan_suffix if month == 11 else yuan_thousands
        table = [
            [p.voucher_no, p.unit, p.doc_no, money(p.amount_fen), date_iso(p.pay_date), p.kind, p.econ_class, p.memo]
            for p in rows
        ]
        header = english if month == 8 else chinese
        write_csv(dest / "payments" / f"{SF_YEAR}-{month:02d}_支出明细.csv", header, table, "utf-8")

    # Inspections: two half-year files (H1 XLSX, H2 GBK CSV).
    samples: list[Sample] = []
    seq = {u.code: 0 for u in SF_UNITS}
    for half, count in enumerate(SF_SAMPLES_H):
        days = [d for m in range(1 + 6 * half, 7 + 6 * half) for d in workdays(SF_YEAR, m)]
        for _ in range(count):
            unit = SF_CITY if rng.random() < 0.65 else SF_HESHAN
            seq[unit.code] += 1
            samples.append(
                Sample(
                    f"SP{SF_YEAR}{unit.code}{seq[unit.code]:04d}",
                    rng.choice(days),
                    "食品",
                    rng.choice(SF_PRODUCTS),
                    rng.choice(["流通", "餐饮", "生产"]),
                    unit.name,
                    "合格",
                )
            )
    for s in rng.sample(samples, SF_FAILED):
        s.result = "不合格"
    samples.sort(key=lambda s: (s.sample_date, s.sample_no))
    h1 = [s for s in samples if s.sample_date.month <= 6]
    h2 = [s for s in samples if s.sample_date.month > 6]
    write_xlsx(
        dest / "inspections" / f"{SF_YEAR}-H1_抽检记录.xlsx",
        INSP_HEADER,
        [
            [
                s.sample_no,
                dt.datetime.combine(s.sample_date, dt.time()),
                s.category,
                s.product,
                s.stage,
                s.unit,
                s.result,
            ]
            for s in h1
        ],
        "抽检记录",
        {2: "yyyy-mm-dd"},
    )
    write_csv(
        dest / "inspections" / f"{SF_YEAR}-H2_抽检记录.csv",
        INSP_HEADER,
        [[s.sample_no, date_zh(s.sample_date), s.category, s.product, s.stage, s.unit, s.result] for s in h2],
        "gbk",
    )

    months = sorted(set(SF_TRAINING) | {m for v in SF_OUTPUT_LATEST.values() for m in v})
    for month in months:
        ym = f"{SF_YEAR}-{month:02d}"
        rows: list[list[object]] = []
        for unit, n in zip(SF_UNITS, SF_TRAINING.get(month, ())):
            rows.append([ym, unit.name, "食品安全培训人次", str(n), "基层监管人员业务培训"])
        for name, series in SF_OUTPUT_LATEST.items():
            if month in series:
                value, note = series[month]
                rows.append([ym, "", name, value, note])
        write_csv(dest / "outputs" / f"{ym}_产出数据.csv", OUT_HEADER, rows, "utf-8")

    write_text(dest / "README.md", sf_readme(cum, by_month, len(h1), len(h2)))


def sf_readme(cum: dict[str, list[int]], by_month: dict[int, list[Payment]], n_h1: int, n_h2: int) -> str:
    fund = [cum[SF_CITY.name][m] + cum[SF_HESHAN.name][m] for m in range(12)]
    lines = [
        "# Example fund `second-fund-2022`",
        "",
        "A smaller fund of a different shape, for tests. **Generated** by",
        "`scripts/make_example_fund.py` (`make_second_fund`); do not edit by hand.",
        "",
        "Shape: milestone pace (03-31→20, 06-30→50, 09-30→75, 12-31→100), XLSX goals and",
        "budget (budget amounts in 万元: header `金额（万元）`), an 追加 and a 调减, two units,",
        "partly met goals, a ≤ indicator, a `0起` indicator, a qualitative indicator, 90%",
        "execution, grade 良. Payments: 12 UTF-8 CSV files, amounts `1,234.50`; August uses the",
        "English alias headers; November's amounts carry `元`. Inspections: H1 XLSX, H2 GBK CSV",
        f"({n_h1} + {n_h2} = {n_h1 + n_h2} 食品 samples, {SF_FAILED} 不合格). Outputs: UTF-8 CSV, 预算单位",
        "empty for fund-level rows.",
        "",
        "## Budget",
        "",
        "| 指标文号 | 预算单位 | 下达日期 | 万元 | 类型 |",
        "|---|---|---|---|---|",
    ]
    for d, u, day, a, k in SF_BUDGET:
        lines.append(f"| {d} | {u} | {day} | {a} | {k} |")
    lines += [
        "",
        "年初预算数 1200000.00 元; 全年预算数 1250000.00 元 (1200000 + 150000 − 100000).",
        f"Per unit (全年): 江门市市场监督管理局 {yuan(SF_UNIT_BUDGET[SF_CITY.name])}, 鹤山市市场监督管理局 "
        f"{yuan(SF_UNIT_BUDGET[SF_HESHAN.name])}.",
        f"Executed: 江门市 {yuan(cum[SF_CITY.name][-1])} "
        f"({pct_text(cum[SF_CITY.name][-1], SF_UNIT_BUDGET[SF_CITY.name])}%), 鹤山市 {yuan(cum[SF_HESHAN.name][-1])} "
        f"({pct_text(cum[SF_HESHAN.name][-1], SF_UNIT_BUDGET[SF_HESHAN.name])}%), fund "
        f"{yuan(fund[-1])} = **90.00%** of 1250000.00.",
        "",
        "## Intended cumulative execution",
        "",
        "Rate against the budget in force at month end (1200000.00 until 07-15, 1350000.00",
        "from 07-15, 1250000.00 from 10-20), and against the final 1250000.00 for comparison.",
        "",
        "| month | cumulative 元 | rate (in force) % | rate (final) % | 鹤山 cumulative 元 |",
        "|---|---|---|---|---|",
    ]
    for m in range(12):
        in_force = 120_000_000 if m < 6 else (135_000_000 if m < 9 else 125_000_000)
        lines.append(
            f"| {SF_YEAR}-{m + 1:02d} | {yuan(fund[m])} | {pct_text(fund[m], in_force)} | "
            f"{pct_text(fund[m], SF_ADJUSTED)} | {yuan(cum[SF_HESHAN.name][m])} |"
        )
    lines += [
        "",
        "Quarters (milestone pace): Q1 18.00 vs 20 (lagging), Q2 45.00 vs 50 (lagging),",
        "Q3 75.00 vs 75 with the budget in force (gap 0: NOT lagging, tolerance 0; 81.00 against the",
        "final budget, also not lagging), Q4 90.00 vs 100 (lagging).",
        "",
        "Refunds (退回):",
        "",
    ]
    lines += refund_lines(by_month)
    lines += [
        "",
        "## Goals and intended scores (by hand)",
        "",
        "| 一级 | 二级 | 三级 | 指标值 | 分值 | actual | score | why |",
        "|---|---|---|---|---|---|---|---|",
        "| 产出指标 | 数量指标 | 食品抽检批次 | ≥400批次 | 20 | 320 | 16.00 | 20 × 320/400 |",
        "| 产出指标 | 数量指标 | 食品安全培训人次 | ≥300人次 | 15 | 255 | 12.75 | 15 × 255/300 (outputs sum) |",
        "| 产出指标 | 质量指标 | 抽检合格率 | ≥97% | 10 | 96.88 (310/320 = 96.875) | 9.99 | 10 × 96.875/97 = 9.987 (9.988 from 96.88) |",
        "| 产出指标 | 时效指标 | 抽检结果按时报送率 | ≥95% | 10 | 90% | 9.47 | 10 × 90/95 = 9.474 |",
        "| 成本指标 | 成本指标 | 人均培训成本 | ≤400元/人天 | 15 | 500 | 12.00 | lower is better: 15 × 400/500 |",
        "| 效益指标 | 社会效益指标 | 食品安全事件发生数 | 0起 | 10 | 0 | 10.00 | target 0, actual 0 |",
        "| 满意度指标 | 服务对象满意度指标 | 服务对象满意度 | 有效提升 | 10 | 基本达成 | 8.00 | qualitative 0.8 |",
        "| 预算执行率 | | | 100% | 10 | 90.00% | 9.00 | 10 × 0.9 |",
        "",
        "Total **87.21**, grade **良**.",
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "examples", help="parent directory of the fund dirs")
    args = parser.parse_args(argv)
    make_jiangmen(args.out / "jiangmen-2021")
    make_second_fund(args.out / "second-fund-2022")
    make_contacts(args.out / "contacts.csv")


# The department's contacts file at the inbox root (budget_monitor/contacts.py).
# 恩平 and 江门 have no contact on purpose: their alerts fall back to the
# finance office and the dashboard marks them (issue 14).
CONTACTS = [
    ("预算单位", "联系人", "电子邮箱", "账号"),
    ("台山市市场监督管理局", "李明", "liming@scjgj.taishan.example.cn", "taishan"),
    ("开平市市场监督管理局", "陈芳", "chenfang@scjgj.kaiping.example.cn", "kaiping"),
    ("鹤山市市场监督管理局", "黄伟", "huangwei@scjgj.heshan.example.cn", "heshan"),
]


def make_contacts(path: Path) -> None:
    write_text(path, "".join(",".join(row) + "\r\n" for row in CONTACTS))


if __name__ == "__main__":
    main()
