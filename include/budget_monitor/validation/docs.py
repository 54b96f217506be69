"""Data Docs: the rules and every validation of a fund as Chinese HTML pages
that work offline.

A fund's site is ``<fund_dir>/data_docs/`` (:data:`DOCS_DIR`)::

    index.html                          every validation, newest first
    rules.html                          every rule of rules/validation_rules.csv in Chinese
    results/<kind>/<page>.json          a validation's result, recorded by the load
    validations/<kind>/<page>.html      its page, rendered from that result

``<page>`` is ``<YYYYmmddTHHMMSS>_<sha256[:8]>_<file name>``: for a rejected
file exactly its quarantined name, so that the quarantine page and the
rejection notice find the page from the quarantine report alone.

The load records each file's result (:func:`record`) when it is validated;
the monthly DAG renders the pages after the load (:func:`build_site`, task
``build_data_docs``). Pages are plain HTML with their style inline: no
script, no stylesheet, font or image from anywhere (tests/test_data_docs.py
parses every page for one).

Why not Great Expectations' own Data Docs site (SiteBuilder,
UpdateDataDocsAction): in GX 1.x every page it writes loads its scripts,
styles and fonts from public CDNs (Bootstrap, jQuery, Popper,
bootstrap-table, bootstrap-datepicker, Font Awesome, Vega, bootstrap-dark)
and its logo from a public bucket, hard-coded in the package's templates
(render/view/templates/page.j2, index_page.j2, js_script_imports.j2,
top_navbar.j2). A site's ``custom_views_directory`` is searched after those
templates (render/view/view.py puts it last in the ChoiceLoader), so they
cannot be replaced; the index's table is drawn by bootstrap-table from
inline JSON, so with the scripts stripped it is empty; and the page chrome
is English. GX has declined to ship the assets (great_expectations issues
994 and 8734, pull request 2870). Vendoring them would mean carrying about
1 MB of third-party scripts and rewriting GX's HTML after every build and
every GX upgrade. Its pages would also need a second GX run per file: the
site reads results from GX's own stores, while a load runs an ephemeral
context, checks many small files in one run (validate_batch) and a large
file chunk by chunk, and a rejected file's context (the store as the load
saw it) is gone afterwards. So the pages here are rendered from the load's
own ValidationReport, which is built from GX's results: the page of a
rejection shows exactly what rejected the file.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .. import atomic
from ..kinds import LOAD_ORDER, data_kind
from ..names import NAME_MAX, fit_name, safe_name
from ..paths import file_mode, private_dir
from ..periods import TZ
from .rules import Rule, load_rules, rules_for

DOCS_DIR = "data_docs"
# Where a deployment serves every fund's data docs (the quarantine page's
# docs route); the rejection notice links a page under it when set.
DOCS_URL_ENV = "BUDGET_MONITOR_DOCS_URL"
# A result file's version: the pages read what they know of it.
RESULT_VERSION = 1

SEVERITY_ZH = {"fatal": "错误（退回）", "warning": "提示"}
ENGINE_ZH = {"native": "GX 原生期望", "prepared": "预处理后由 GX 检查"}
STATUS_ZH = {"passed": "通过", "failed": "未通过", "warned": "提示", "skipped": "未执行", "not_run": "未判定"}
OUTCOME_ZH = {"loaded": "通过校验，已入库", "rejected": "未通过校验，已整份退回"}
# What a rule that was not run lacked (ValidationContext fields), as the office calls it.
CONTEXT_ZH = {
    "fund_year": "资金年度",
    "units": "预算指标表中的预算单位",
    "doc_nos": "预算指标表中的指标文号",
    "pairs": "预算指标表中的指标文号与预算单位",
    "inspection_categories": "fund.yaml 中的抽检类别",
    "goal_names": "绩效目标表",
    "execution_weight": "预算执行率分值",
    "adjusted_budget_fen": "全年预算数",
    "paid_by_unit": "已入库的支付",
    "paid_by_doc": "已入库的支付",
    "paid_by_pair": "已入库的支付",
}


# ------------------------------------------------------------------ names


def page_id(file: str, sha256: str | None, at: datetime) -> str:
    """``<stamp>_<sha8>_<file's name>``, shaped as a quarantined name so that
    the page (+ ``.html``) and its result (+ ``.json``) fit NAME_MAX."""
    stamp, sha8 = f"{at.astimezone(TZ):%Y%m%dT%H%M%S}", (sha256 or "nohash")[:8]
    prefix = f"{stamp}_{sha8}_"
    room = NAME_MAX - len(prefix.encode("utf-8")) - len(".report.json.tmp")
    return prefix + fit_name(safe_name(Path(file).name), room)


def page_path(kind: str, page: str) -> str:
    """The page of a validation, relative to the site (``validations/<kind>/<page>.html``)."""
    return f"validations/{_kind_dir(kind)}/{page}.html"


def page_url(fund_dir_name: str, kind: str, page: str) -> str | None:
    """The page's address for a notice, under ``BUDGET_MONITOR_DOCS_URL``
    (None when the deployment does not say where the docs are served)."""
    base = os.environ.get(DOCS_URL_ENV, "").strip().rstrip("/")
    if not base:
        return None
    return f"{base}/{quote(fund_dir_name, safe='')}/{quote(page_path(kind, page))}"


def _kind_dir(kind: str) -> str:
    # A kind is a folder name here: only the kinds of the table (or "any" for an
    # entry no kind could be told for) ever reach the file system.
    return kind if kind in LOAD_ORDER else "any"


# ------------------------------------------------------------------ results


def record(
    fund_dir: Path,
    report: Any,
    *,
    outcome: str,
    page: str,
    fund_code: str,
    fund_title: str,
    at: datetime | None = None,
) -> Path:
    """Keep ``report`` (a ValidationReport) as the result of one validation of
    ``fund_dir``; its page is rendered by :func:`build_site`. ``outcome`` is
    ``loaded`` or ``rejected``. Returns the result file."""
    at = (at or datetime.now(TZ)).astimezone(TZ)
    body = {
        "version": RESULT_VERSION,
        "page": page,
        "outcome": outcome,
        "fund_code": fund_code,
        "fund_title": fund_title,
        "validated_at": at.isoformat(timespec="seconds"),
        "report": report.to_dict(),
    }
    folder = private_dir(Path(fund_dir) / DOCS_DIR / "results" / _kind_dir(report.kind))
    text = json.dumps(body, ensure_ascii=False, indent=1, default=str)
    # Not fsynced: the docs are a view, and a load writes one result per file.
    return atomic.write_text(folder / f"{page}.json", text, mode=file_mode(), durable=False)


def _results(site: Path) -> list[dict[str, Any]]:
    out = []
    for path in (site / "results").glob("*/*.json"):
        if atomic.is_temp_name(path.name):
            continue
        try:
            body = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # a result that cannot be read has no page; the others do
        if isinstance(body, dict) and isinstance(body.get("report"), dict):
            out.append({**body, "_source": path})
    return sorted(out, key=lambda b: (b.get("validated_at", ""), b.get("page", "")), reverse=True)


# ------------------------------------------------------------------ rules in Chinese


@cache
def _header(kind: str, column: str) -> str:
    from ..tables import spec_of

    try:
        return spec_of(kind, column).header_zh
    except (KeyError, ValueError):
        return column


@cache
def _max_length(kind: str, column: str) -> int | None:
    from .prepare import store_length

    return store_length(kind, column)


def describe(r: Rule) -> str:
    """What ``r`` asks for, in Chinese, from the rules table's ``description_zh``:
    ``{header}`` is the column's header in the data contract (columns whose
    sentences differ only there are named together), ``{max_length}`` the
    store column's length."""
    groups: dict[str, list[str]] = {}
    for col in r.columns or ("",):
        values = {"max_length": _max_length(r.table, col) if col else ""}
        text = re.sub(
            r"\{(\w+)\}",
            lambda m: "\0" if m.group(1) == "header" else str(values.get(m.group(1), "")),
            r.description_zh,
        )
        groups.setdefault(text, []).append(_header(r.table, col) if col else "")
    return "；".join(text.replace("\0", "”、“".join(headers)) for text, headers in groups.items())


def _rule_rows(rules: Iterable[Rule]) -> list[dict[str, Any]]:
    return [
        {
            "rule_id": r.rule_id,
            "category": r.category,
            "severity": SEVERITY_ZH.get(r.severity, r.severity),
            "description": describe(r),
            "columns": "、".join(_header(r.table, c) for c in r.columns),
            "expectation": r.expectation,
            "engine": ENGINE_ZH.get(r.engine, r.engine) if r.expectation else "读取文件时检查",
        }
        for r in rules
    ]


def _checks(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per rule the file was held to: the kind's suite, plus any
    file-level rule (ING-*) that failed, with its status."""
    kind = report.get("kind", "")
    counts: Mapping[str, int] = report.get("counts") or {}
    skipped = {s.split("（", 1)[0]: _lacking(s) for s in report.get("skipped") or []}
    failed = {f["rule_id"] for f in report.get("failures") or []}
    warned = {f["rule_id"] for f in report.get("warnings") or []}
    suite = rules_for(kind) if kind in LOAD_ORDER else ()
    file_level = [r for r in load_rules() if r.table == "any" and r.rule_id in failed | warned]
    # A file-level failure (unreadable, unexpected error) means the suite did not judge the file.
    judged = not file_level
    rows = []
    for r, row in zip([*file_level, *suite], _rule_rows([*file_level, *suite]), strict=True):
        if r.rule_id in failed:
            status = "failed"
        elif r.rule_id in warned:
            status = "warned"
        elif r.rule_id in skipped:
            status = "skipped"
        elif judged:
            status = "passed"
        else:
            status = "not_run"
        row.update(
            status=status,
            status_zh=STATUS_ZH[status],
            count=counts.get(r.rule_id, 0) if status in ("failed", "warned") else None,
            note=skipped.get(r.rule_id, ""),
        )
        rows.append(row)
    return rows


def _lacking(skipped: str) -> str:
    """``BUD-009（缺少上下文：paid_by_unit）`` (engine.active_rules) -> ``缺少已入库的支付``."""
    _, _, fields = skipped.partition("缺少上下文：")
    names = [CONTEXT_ZH.get(f, f) for f in fields.rstrip("）").split("、") if f]
    return "缺少" + "、".join(dict.fromkeys(names)) if names else ""


# ------------------------------------------------------------------ rendering


@cache
def _env() -> Any:
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    env = Environment(
        loader=PackageLoader("budget_monitor", "templates/data_docs"),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["url"] = lambda s: quote(str(s))
    return env


def render_rules() -> str:
    """rules.html: every rule of the rules table, by data kind, in Chinese."""
    kinds = [
        {"name": "any", "label": "所有文件（读取时）", "rules": _rule_rows(r for r in load_rules() if r.table == "any")}
    ]
    kinds += [{"name": k, "label": data_kind(k).label_zh, "rules": _rule_rows(rules_for(k))} for k in LOAD_ORDER]
    return _env().get_template("rules.html.j2").render(kinds=kinds, root="")


def render_validation(result: Mapping[str, Any]) -> str:
    """A validation's page from its recorded result."""
    report = result["report"]
    kind = report.get("kind", "")
    checks = _checks(report)
    return (
        _env()
        .get_template("validation.html.j2")
        .render(
            result=result,
            report=report,
            kind_zh=data_kind(kind).label_zh if kind in LOAD_ORDER else kind,
            outcome_zh=OUTCOME_ZH.get(result.get("outcome", ""), result.get("outcome", "")),
            checks=checks,
            failed=[c for c in checks if c["status"] == "failed"],
            at=_shown_time(result.get("validated_at", "")),
            root="../../",
        )
    )


def _shown_time(iso: str) -> str:
    """``2021-07-05T06:00:01+08:00`` as the office reads it (Asia/Shanghai): ``2021-07-05 06:00:01``."""
    return iso.replace("T", " ")[:19]


def render_index(results: list[Mapping[str, Any]], title: str) -> str:
    rows = []
    for r in results:
        report = r["report"]
        kind = report.get("kind", "")
        rows.append(
            {
                "at": _shown_time(r.get("validated_at", "")),
                "file": report.get("file", ""),
                "kind_zh": data_kind(kind).label_zh if kind in LOAD_ORDER else kind,
                "outcome": r.get("outcome", ""),
                "outcome_zh": OUTCOME_ZH.get(r.get("outcome", ""), ""),
                "rows": report.get("n_rows", 0),
                "errors": sum((report.get("counts") or {}).values()),
                "href": page_path(kind, r["page"]),
            }
        )
    return _env().get_template("index.html.j2").render(title=title, rows=rows, root="")


def build_site(fund_dir: Path, *, title: str | None = None, rebuild: bool = False) -> Path:
    """Render ``<fund_dir>/data_docs``: the index, the rules and the page of
    every recorded result whose page is missing or older than its result
    (every page with ``rebuild``). Returns index.html."""
    site = private_dir(Path(fund_dir) / DOCS_DIR)
    results = _results(site)
    for result in results:
        report = result["report"]
        target = site / page_path(report.get("kind", ""), result["page"])
        source: Path = result["_source"]
        if not rebuild and target.exists() and target.stat().st_mtime >= source.stat().st_mtime:
            continue
        private_dir(target.parent)
        atomic.write_text(target, render_validation(result), mode=file_mode(), durable=False)
    if title is None:
        title = next((r.get("fund_title") for r in results if r.get("fund_title")), Path(fund_dir).name)
    atomic.write_text(site / "rules.html", render_rules(), mode=file_mode(), durable=False)
    return atomic.write_text(site / "index.html", render_index(results, str(title)), mode=file_mode(), durable=False)


# ------------------------------------------------------------------ a fund directory, re-validated


def build_data_docs(
    out_dir: Path,
    items: Iterable[tuple[Any, Any]] | None = None,
    *,
    fund_dir: Path | None = None,
) -> Path:
    """Validate ``items`` (``(IngestedTable, ValidationContext)``) and, with
    ``fund_dir``, every file of that fund directory against its fund.yaml,
    budget and goals, and render the results as a site under
    ``out_dir/data_docs`` (the CLI's ``data-docs``; the monthly DAG renders
    the load's own results instead). Returns its index.html."""
    from .engine import validate_table

    out_dir = Path(out_dir)
    work = list(items or [])
    code = title = out_dir.name
    if fund_dir is not None:
        from ..config import load_fund_config

        cfg = load_fund_config(Path(fund_dir))
        code, title = cfg.code, cfg.title
        work.extend(_fund_items(Path(fund_dir)))
    now = datetime.now(TZ)
    for table, ctx in work:
        report = validate_table(table, ctx)
        outcome = "loaded" if report.ok else "rejected"
        page = page_id(table.path.name, table.sha256, now)
        record(out_dir, report, outcome=outcome, page=page, fund_code=code, fund_title=title, at=now)
    return build_site(out_dir, title=title, rebuild=True)


def _fund_items(fund_dir: Path) -> list[tuple[Any, Any]]:
    """Every readable table file of a fund directory with its context."""
    from ..config import load_fund_config
    from ..ingest import IngestedTable, IngestError, read_table
    from ..intake.files import fund_files
    from ..kinds import FACT_KINDS, SNAPSHOT_KINDS
    from .context import ValidationContext

    cfg = load_fund_config(fund_dir)
    # The same file selection as the monthly load (no ~$ lock files, no dot files).
    files = fund_files(fund_dir)
    tables: dict[str, IngestedTable] = {}
    for kind in SNAPSHOT_KINDS:
        for p in files.get(kind, [])[:1]:
            try:
                tables[kind] = read_table(p, kind)
            except IngestError:
                pass
    ctx = ValidationContext.for_fund(cfg, fund_dir=fund_dir, budget=tables.get("budget"), goals=tables.get("goals"))
    out: list[tuple[Any, Any]] = [(t, ctx) for t in tables.values()]
    for kind in FACT_KINDS:
        for p in files.get(kind, []):
            try:
                out.append((read_table(p, kind), ctx))
            except IngestError:
                continue
    return out
