#!/usr/bin/env python3
"""Deterministic synthetic province for the benchmarks.

A provincial finance department: ``--funds`` special funds spent through
``--units`` budget units, ``--payments`` payments and ``--inspections``
inspection records in one year. Everything derives from ``--seed`` (numpy
PCG64), so two runs with the same flags give byte-identical files.

Layout (under ``--out``, default ``bench/data/<full|small|custom>``)::

    funds/<code>/            one fund directory per fund (data contract layout)
      fund.yaml goals.csv budget.csv
      payments/<code>_支出_YYYY-MM.csv      one export per month
      inspections/<code>_抽检_YYYY-MM.csv  one export per month
      outputs/<code>_产出_YYYY-MM.csv      one export per month
    province/
      payments_<year>.gbk.csv   all payments of the year in one GBK CSV (stage a)
      payments_<year>.utf8.csv  the same bytes as UTF-8 (duckdb cannot read GBK)
      budget.csv goals.csv inspections.csv outputs.csv   province-wide, UTF-8,
                                with a 资金编码 column (used to seed stores)
      fund_a/                   a fund directory holding the whole year's
                                payments as one file (stage a through load_month)
    manifest.json               sizes, seed, and the fund codes in order

What finance exports really look like is imitated where it costs the
pipeline something: a third of the funds export GBK, one in ten prints
thousands separators (``1,234.50``), one in ten writes dates as ``2021/6/3``,
1 % of payments are refunds (退回, negative), CRLF line ends.

Usage::

    python bench/generate.py                 # full scale (2,000 funds, 1M payments)
    python bench/generate.py --small         # CI size
    python bench/generate.py --funds 200 --payments 100000 --inspections 20000 --units 50
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

HERE = Path(__file__).resolve().parent

FULL = {"funds": 2000, "units": 500, "payments": 1_000_000, "inspections": 200_000}
SMALL = {"funds": 20, "units": 10, "payments": 20_000, "inspections": 4_000}

CITIES = ["广州", "深圳", "珠海", "汕头", "佛山", "韶关", "河源", "梅州", "惠州", "汕尾", "东莞",
          "中山", "江门", "阳江", "湛江", "茂名", "肇庆", "清远", "潮州", "揭阳", "云浮"]
DEPTS = ["市场监督管理局", "财政局", "教育局", "卫生健康局", "农业农村局", "交通运输局", "水务局",
         "生态环境局", "自然资源局", "住房和城乡建设局", "商务局", "文化广电旅游体育局", "民政局",
         "人力资源和社会保障局", "科学技术局", "工业和信息化局", "应急管理局", "司法局", "公安局",
         "林业局", "医疗保障局", "退役军人事务局", "统计局", "档案局"]
PURPOSES = ["药品监督管理", "食品安全抽检", "乡村振兴", "基础教育提升", "公共卫生服务", "农田水利建设",
            "生态环境治理", "公路养护", "城乡供水保障", "科技创新", "中小企业发展", "文化惠民"]
CATEGORIES = ["药品", "药包材", "化妆品", "医疗器械", "食品"]
ECON = ["30201 办公费", "30211 差旅费", "30213 维修（护）费", "30226 劳务费", "30227 委托业务费",
        "31002 办公设备购置", "30216 培训费"]
MEMO = ["支付检验检测费", "支付设备采购款", "支付劳务费", "支付差旅费", "支付委托业务费", "支付培训费",
        "支付维修费", "支付办公用品款"]
# Payment seasonality: finance offices spend late (Q4 heavy), so Q2/Q3 often lag.
MONTH_WEIGHTS = np.array([4, 5, 6, 6, 7, 7, 8, 8, 9, 10, 12, 18], dtype=float)

PAY_HEADER = ["支付凭证号", "预算单位", "指标文号", "支付金额", "支付日期", "业务类型", "经济分类", "摘要"]
INS_HEADER = ["抽样单号", "抽样日期", "品种类别", "抽检单位", "检验结论"]
OUT_HEADER = ["月份", "预算单位", "三级指标", "完成值", "备注"]
BUD_HEADER = ["指标文号", "预算单位", "下达日期", "金额", "类型"]
GOAL_HEADER = ["一级指标", "二级指标", "三级指标", "指标值", "分值"]


@dataclass(frozen=True)
class Sizes:
    funds: int
    units: int
    payments: int
    inspections: int
    year: int = 2021
    seed: int = 20211231


def fund_code(i: int, year: int) -> str:
    return f"GD{year}-{i + 1:04d}"


def unit_names(n: int) -> list[str]:
    names = [f"{c}市{d}" for d in DEPTS for c in CITIES]
    if n > len(names):
        names += [f"第{i:04d}预算单位" for i in range(n - len(names))]
    return names[:n]


def _yuan(fen: np.ndarray) -> pd.Series:
    """Exact '1234.50' text from integer fen (vectorised, no float)."""
    fen = np.asarray(fen, dtype=np.int64)
    sign = np.where(fen < 0, "-", "")
    q, r = np.divmod(np.abs(fen), 100)
    return pd.Series(sign) + pd.Series(q).astype(str) + "." + pd.Series(r).astype(str).str.zfill(2)


def _yuan_thousands(fen: np.ndarray) -> pd.Series:
    fen = np.asarray(fen, dtype=np.int64)
    q, r = np.divmod(np.abs(fen), 100)
    txt = [f"{'-' if f < 0 else ''}{a:,}.{b:02d}" for f, a, b in zip(fen.tolist(), q.tolist(), r.tolist())]
    return pd.Series(txt, dtype=object)


def _csv_field(s: pd.Series) -> pd.Series:
    """Minimal CSV quoting (fields with a comma or quote)."""
    s = s.astype(str)
    need = s.str.contains('[,"]', regex=True)
    if need.any():
        s = s.where(~need, '"' + s.str.replace('"', '""', regex=False) + '"')
    return s


def _lines(frame: pd.DataFrame) -> pd.Series:
    out = _csv_field(frame.iloc[:, 0])
    for c in frame.columns[1:]:
        out = out + "," + _csv_field(frame[c])
    return out


def _write(path: Path, header: list[str], lines: list[str] | pd.Series, encoding: str) -> None:
    body = "\r\n".join([",".join(header), *list(lines)]) + "\r\n"
    data = body.encode(encoding)
    if encoding == "utf-8-sig":
        pass  # the codec adds the BOM
    path.write_bytes(data)


def _dates_text(days: np.ndarray, year: int, slash: np.ndarray) -> pd.Series:
    d = pd.to_datetime(np.datetime64(f"{year}-01-01") + days.astype("timedelta64[D]"))
    iso = pd.Series(d.strftime("%Y-%m-%d"))
    if slash.any():
        alt = pd.Series(d.year.astype(str) + "/" + d.month.astype(str) + "/" + d.day.astype(str))
        iso = iso.where(~slash, alt)
    return iso


def generate(out: Path, sz: Sizes, *, quiet: bool = False) -> dict:
    t0 = time.perf_counter()
    rng = np.random.default_rng(sz.seed)
    year = sz.year
    if out.exists():
        shutil.rmtree(out)
    (out / "funds").mkdir(parents=True)
    (out / "province").mkdir()
    units = unit_names(sz.units)
    n_days = 366 if year % 4 == 0 else 365

    # ---------------------------------------------------------------- funds
    codes = [fund_code(i, year) for i in range(sz.funds)]
    enc_of = np.where(np.arange(sz.funds) % 3 == 0, "gbk", np.where(np.arange(sz.funds) % 3 == 1, "utf-8-sig", "utf-8"))
    thousands = (np.arange(sz.funds) % 10) == 7
    slash = (np.arange(sz.funds) % 10) == 4
    # Each fund is spent through 1..6 units; unit i%U first so every unit is used.
    fund_units: list[np.ndarray] = []
    for i in range(sz.funds):
        k = int(rng.integers(1, 7))
        extra = rng.choice(sz.units, size=k, replace=False)
        us = np.unique(np.concatenate([[i % sz.units], extra]))[: max(k, 1)]
        fund_units.append(us)
    # Fund sizes: lognormal weights, multinomial split of the province totals.
    w = rng.lognormal(0.0, 0.8, sz.funds)
    w /= w.sum()
    n_pay = rng.multinomial(sz.payments, w)
    n_ins = rng.multinomial(sz.inspections, rng.dirichlet(np.full(sz.funds, 5.0)))

    # ------------------------------------------------------------- payments
    P = sz.payments
    p_fund = np.repeat(np.arange(sz.funds), n_pay)
    # unit within the fund's unit list
    n_units_of = np.array([len(u) for u in fund_units])
    pick = (rng.random(P) * n_units_of[p_fund]).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(n_units_of)])
    flat_units = np.concatenate(fund_units)
    p_unit = flat_units[offsets[p_fund] + pick]
    month = rng.choice(12, size=P, p=MONTH_WEIGHTS / MONTH_WEIGHTS.sum())
    month_start = np.array([(np.datetime64(f"{year}-{m + 1:02d}-01") - np.datetime64(f"{year}-01-01")).astype(int)
                            for m in range(12)] + [n_days])
    month_len = month_start[1:] - month_start[:-1]
    day = month_start[month] + (rng.random(P) * month_len[month]).astype(np.int64)
    amount = np.round(rng.lognormal(10.5, 1.2, P)).astype(np.int64) + 100  # fen, ~360 元 median
    refund = rng.random(P) < 0.01
    amount = np.where(refund, -np.maximum(amount // 10, 1), amount)
    econ = rng.integers(0, len(ECON), P)
    memo = rng.integers(0, len(MEMO), P)
    # order: by fund, then date (what an export looks like), voucher numbers follow
    order = np.lexsort((day, p_fund))
    p_fund, p_unit, month, day, amount, refund, econ, memo = (a[order] for a in (p_fund, p_unit, month, day, amount, refund, econ, memo))
    seq = np.arange(P) - np.repeat(np.concatenate([[0], np.cumsum(n_pay)[:-1]]), n_pay)
    code_arr = np.array(codes, dtype=object)
    voucher = pd.Series(code_arr[p_fund]).str.replace(f"GD{year}-", f"PZ{year}", regex=False) + pd.Series(seq + 1).astype(str).str.zfill(6)
    unit_arr = np.array(units, dtype=object)

    # --------------------------------------------------------------- budget
    # One 年初 document per (fund, unit); some funds get a 追加 or a 调减.
    spent = pd.DataFrame({"f": p_fund, "u": p_unit, "a": amount}).groupby(["f", "u"])["a"].sum()
    bud_rows = []
    doc_of: dict[tuple[int, int], str] = {}
    for i in range(sz.funds):
        rate = 0.80 + 0.19 * rng.random()
        for j, u in enumerate(fund_units[i]):
            doc = f"粤财预〔{year}〕{i + 1:04d}-{j + 1}号"
            doc_of[(i, int(u))] = doc
            s = int(spent.get((i, int(u)), 0))
            total = max(((int(s / rate) // 10000) + 1) * 10000, 1_000_000)
            kind = rng.random()
            if kind < 0.15:  # part of it comes as a mid-year 追加
                add = (total // 5 // 10000) * 10000
                bud_rows.append((i, f"粤财追〔{year}〕{i + 1:04d}-{j + 1}号", int(u), f"{year}-06-15", add, "追加"))
                total -= add
            elif kind < 0.22:
                cut = ((total // 20) // 10000) * 10000
                bud_rows.append((i, f"粤财减〔{year}〕{i + 1:04d}-{j + 1}号", int(u), f"{year}-09-20", cut, "调减"))
                total += cut
            bud_rows.append((i, doc, int(u), f"{year}-01-{10 + (i % 15):02d}", total, "年初"))
    bud = pd.DataFrame(bud_rows, columns=["f", "doc", "u", "date", "fen", "kind"]).sort_values(["f", "date", "doc"], kind="stable")
    p_doc = np.array([doc_of[(f, u)] for f, u in zip(p_fund.tolist(), p_unit.tolist())], dtype=object)

    # ---------------------------------------------------------- inspections
    I = sz.inspections
    i_fund = np.repeat(np.arange(sz.funds), n_ins)
    i_pick = (rng.random(I) * n_units_of[i_fund]).astype(np.int64)
    i_unit = flat_units[offsets[i_fund] + i_pick]
    i_month = rng.integers(0, 12, I)
    i_day = month_start[i_month] + (rng.random(I) * month_len[i_month]).astype(np.int64)
    i_cat = rng.choice(len(CATEGORIES), size=I, p=[0.45, 0.1, 0.15, 0.1, 0.2])
    r = rng.random(I)
    i_res = np.where(r < 0.97, 0, np.where(r < 0.995, 1, 2))
    order = np.lexsort((i_day, i_fund))
    i_fund, i_unit, i_month, i_day, i_cat, i_res = (a[order] for a in (i_fund, i_unit, i_month, i_day, i_cat, i_res))
    i_seq = np.arange(I) - np.repeat(np.concatenate([[0], np.cumsum(n_ins)[:-1]]), n_ins)
    sample_no = pd.Series(code_arr[i_fund]).str.replace(f"GD{year}-", f"CJ{year}", regex=False) + pd.Series(i_seq + 1).astype(str).str.zfill(5)
    results = np.array(["合格", "不合格", "待检"], dtype=object)
    cats = np.array(CATEGORIES, dtype=object)

    # ------------------------------------------------ text columns (vectorised)
    pay_amount_txt = _yuan(amount)
    if thousands[p_fund].any():
        m = thousands[p_fund]
        pay_amount_txt[m] = _yuan_thousands(amount[m]).to_numpy()
    pay = pd.DataFrame({
        "voucher_no": voucher.to_numpy(),
        "unit": unit_arr[p_unit],
        "doc_no": p_doc,
        "amount": pay_amount_txt.to_numpy(),
        "pay_date": _dates_text(day, year, slash[p_fund]).to_numpy(),
        "kind": np.where(refund, "退回", "支付"),
        "econ_class": np.array(ECON, dtype=object)[econ],
        "memo": np.array(MEMO, dtype=object)[memo],
    })
    pay_lines = _lines(pay)
    ins = pd.DataFrame({
        "sample_no": sample_no.to_numpy(),
        "sample_date": _dates_text(i_day, year, slash[i_fund]).to_numpy(),
        "category": cats[i_cat],
        "unit": unit_arr[i_unit],
        "result": results[i_res],
    })
    ins_lines = _lines(ins)

    # --------------------------------------------------------- fund directories
    pay_bounds = np.concatenate([[0], np.cumsum(n_pay)])
    ins_bounds = np.concatenate([[0], np.cumsum(n_ins)])
    goal_rows_all: list[tuple] = []
    out_rows_all: list[tuple] = []
    for i, code in enumerate(codes):
        d = out / "funds" / code
        for sub in ("payments", "inspections", "outputs"):
            (d / sub).mkdir(parents=True)
        enc = str(enc_of[i])
        purpose = PURPOSES[i % len(PURPOSES)]
        dept = units[int(fund_units[i][0])]
        a, b = pay_bounds[i], pay_bounds[i + 1]
        fm = month[a:b]
        lines = pay_lines.iloc[a:b].to_numpy()
        for m in range(12):
            sel = lines[fm == m]
            _write(d / "payments" / f"{code}_支出_{year}-{m + 1:02d}.csv", PAY_HEADER, sel, enc)
        a, b = ins_bounds[i], ins_bounds[i + 1]
        im = i_month[a:b]
        lines = ins_lines.iloc[a:b].to_numpy()
        n_drug = int((i_cat[a:b] == 0).sum())
        n_ok = int((i_res[a:b] == 0).sum())
        for m in range(12):
            _write(d / "inspections" / f"{code}_抽检_{year}-{m + 1:02d}.csv", INS_HEADER, lines[im == m], enc)
        # outputs: three measured indicators and one qualitative, monthly
        sat = 88 + int(rng.integers(0, 10))
        cost = 360 + int(rng.integers(0, 80))
        for m in range(12):
            mm = f"{year}-{m + 1:02d}"
            rows = [(mm, "", "按时完成率", "100%", ""), (mm, "", "人均检验成本", f"{cost}", "元/人天"),
                    (mm, "", "服务对象满意度", f"{sat}.{m % 10}%", "问卷调查"),
                    (mm, "", "监管能力提升", "达成" if m >= 6 else "基本达成", "")]
            _write(d / "outputs" / f"{code}_产出_{year}-{m + 1:02d}.csv", OUT_HEADER,
                   [",".join(r) for r in rows], enc)
            out_rows_all += [(code, *r) for r in rows]
        drug_target = max(int(n_drug * (0.9 + 0.2 * rng.random())), 1)
        goals = [
            ("产出指标", "数量指标", "药品抽检批次", f"≥{drug_target}批次", "20"),
            ("产出指标", "质量指标", "抽检合格率", "≥95%", "15"),
            ("产出指标", "时效指标", "按时完成率", "=100%", "15"),
            ("成本指标", "经济成本指标", "人均检验成本", "≤400元/人天", "10"),
            ("效益指标", "社会效益指标", "监管能力提升", "有效提升", "20"),
            ("满意度指标", "服务对象满意度指标", "服务对象满意度", "≥90%", "10"),
        ]
        _write(d / "goals.csv", GOAL_HEADER, [",".join(g) for g in goals], "utf-8")
        goal_rows_all += [(code, *g) for g in goals]
        fb = bud[bud["f"] == i]
        amt = _yuan(fb["fen"].to_numpy())
        blines = (fb["doc"].astype(str) + "," + unit_arr[fb["u"].to_numpy()] + "," + fb["date"] + "," + amt.to_numpy() + "," + fb["kind"]).tolist()
        _write(d / "budget.csv", BUD_HEADER, blines, enc)
        cfg = {
            "code": code,
            "name": f"{year}年{dept}{purpose}专项资金",
            "short_name": f"{purpose}专项资金",
            "year": year,
            "department": dept,
            "uses": f"{purpose}相关工作",
            "goal_paragraphs": [f"完成药品抽检{drug_target}批次以上，抽检合格率不低于95%。",
                                "按时完成各项工作任务，监管能力有效提升。"],
            "recipients": [f"caiwu{i + 1:04d}@example.gov.cn"],
            "pace": {"policy": "linear_month"},
            "measures": {
                "药品抽检批次": {"source": "inspections", "agg": "count", "where": {"category": "药品"}},
                "抽检合格率": {"source": "inspections", "agg": "ratio", "where": {"result": "合格"},
                               "denominator_where": {}},
                "按时完成率": {"source": "outputs", "agg": "latest"},
                "人均检验成本": {"source": "outputs", "agg": "latest"},
                "监管能力提升": {"source": "qualitative"},
                "服务对象满意度": {"source": "outputs", "agg": "latest"},
            },
        }
        (d / "fund.yaml").write_text(
            "# synthetic fund generated by bench/generate.py\n"
            + yaml.safe_dump(cfg, allow_unicode=True, sort_keys=False, width=100000), encoding="utf-8")
        _ = n_ok  # kept for symmetry with drug_target; the ratio is measured from data

    # ------------------------------------------------------------- province files
    prov = out / "province"
    fund_col = pd.Series(code_arr[p_fund])
    # the province year file: plain 2-dp amounts and ISO dates (one system's export)
    year_lines = _lines(pay.assign(amount=_yuan(amount).to_numpy(),
                                   pay_date=_dates_text(day, year, np.zeros(P, dtype=bool)).to_numpy())) + "," + fund_col
    header = PAY_HEADER + ["资金编码"]
    _write(prov / f"payments_{year}.gbk.csv", header, year_lines, "gbk")
    _write(prov / f"payments_{year}.utf8.csv", header, year_lines, "utf-8")
    pb = pd.DataFrame({"资金编码": code_arr[bud["f"].to_numpy()], "指标文号": bud["doc"].to_numpy(),
                       "预算单位": unit_arr[bud["u"].to_numpy()], "下达日期": bud["date"].to_numpy(),
                       "金额": _yuan(bud["fen"].to_numpy()).to_numpy(), "类型": bud["kind"].to_numpy()})
    pb.to_csv(prov / "budget.csv", index=False, encoding="utf-8")
    ins.assign(sample_date=_dates_text(i_day, year, np.zeros(I, dtype=bool)).to_numpy(),
               fund_code=code_arr[i_fund]).to_csv(prov / "inspections.csv", index=False, encoding="utf-8")
    pd.DataFrame(out_rows_all, columns=["fund_code", "month", "unit", "name", "value", "note"]).to_csv(
        prov / "outputs.csv", index=False, encoding="utf-8")
    pd.DataFrame(goal_rows_all, columns=["fund_code", "level1", "level2", "name", "target", "weight"]).to_csv(
        prov / "goals.csv", index=False, encoding="utf-8")
    # stage a's fund directory: the whole province's allocations, one year file
    fa = prov / "fund_a"
    (fa / "payments").mkdir(parents=True)
    pb.drop(columns=["资金编码"]).to_csv(fa / "budget.csv", index=False, encoding="utf-8")
    os.link(prov / f"payments_{year}.gbk.csv", fa / "payments" / f"payments_{year}.csv")
    (fa / "fund.yaml").write_text(yaml.safe_dump({
        "code": "PROVINCE", "name": f"{year}年省级专项资金（全省支出汇总）", "year": year,
        "department": "广东省财政厅"}, allow_unicode=True, sort_keys=False), encoding="utf-8")

    manifest = {"sizes": sz.__dict__, "funds": codes,
                "files": sum(1 for _ in (out / "funds").rglob("*.csv")),
                "payments_gbk_bytes": (prov / f"payments_{year}.gbk.csv").stat().st_size}
    (out / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8")
    if not quiet:
        print(f"generated {sz.funds} funds, {sz.payments} payments, {sz.inspections} inspections "
              f"({manifest['files']} CSV files) in {time.perf_counter() - t0:.1f} s -> {out}")
    return manifest


def sizes_from_args(args: argparse.Namespace) -> tuple[Sizes, str]:
    base = dict(SMALL if args.small else FULL)
    for k in base:
        v = getattr(args, k, None)
        if v is not None:
            base[k] = v
    label = "small" if args.small else "full"
    if base != (SMALL if args.small else FULL):
        label = f"f{base['funds']}_p{base['payments']}"
    return Sizes(**base, year=args.year, seed=args.seed), label


def add_size_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--small", action="store_true", help="CI size (20 funds, 20k payments)")
    p.add_argument("--funds", type=int)
    p.add_argument("--units", type=int)
    p.add_argument("--payments", type=int)
    p.add_argument("--inspections", type=int)
    p.add_argument("--year", type=int, default=2021)
    p.add_argument("--seed", type=int, default=20211231)


def ensure(sz: Sizes, label: str, root: Path | None = None) -> Path:
    """Generate into ``bench/data/<label>`` unless an identical generation is there."""
    out = (root or HERE / "data") / label
    man = out / "manifest.json"
    if man.is_file():
        try:
            if json.loads(man.read_text(encoding="utf-8"))["sizes"] == sz.__dict__:
                return out
        except (ValueError, KeyError):
            pass
    generate(out, sz)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_size_flags(p)
    p.add_argument("--out", type=Path, help="output directory (default bench/data/<label>)")
    args = p.parse_args(argv)
    sz, label = sizes_from_args(args)
    generate(args.out or HERE / "data" / label, sz)
    return 0


if __name__ == "__main__":
    sys.exit(main())
