"""Year-end self-evaluation: self_evaluation.json and the 自评报告 in every format.

``build_self_evaluation`` makes the contract-shaped dict (data-contract.md,
"Outputs"); ``write_outputs`` writes it to a directory:

=====================  ==================================================
self_evaluation.json   the dict, UTF-8, keys as in the contract
自评报告.docx           docxtpl from templates/self_evaluation_template.docx
自评报告.html           jinja2, autoescaped
自评报告.md             jinja2, every data value markdown/HTML-escaped
自评表.xlsx             openpyxl; data text is never a formula
执行进度.png            cumulative execution rate vs pace, lagging quarters shaded
单位执行率.png          execution rate per budget unit (when there are units)
=====================  ==================================================

Templates, the docx template bytes and the CJK font are loaded once per
process (module-level caches): the benchmark builds thousands of reports.

Every file is written through :func:`budget_monitor.atomic.staged`: a full
disk or an error mid-way leaves the directory with its old files and no
temporary one. Every template render is bounded in time
(``BUDGET_MONITOR_RENDER_TIMEOUT_S``, default 30 s) and fails with
:class:`RenderError` (:class:`RenderTimeout`), see "bounded rendering" below.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any

from budget_monitor import atomic
from budget_monitor.config import FundConfig
from budget_monitor.measures import Actual
from budget_monitor.money_fmt import fen_to_wanyuan_str, fen_to_yuan_str, plain_number, round2, yuan_str_to_fen
from budget_monitor.narrative import build_narrative, load_texts, quarter_phrase
from budget_monitor.scoring import score_fund

if TYPE_CHECKING:
    import pandas as pd

TEMPLATES = Path(__file__).with_name("templates")
DOCX_TEMPLATE = TEMPLATES / "self_evaluation_template.docx"

JSON_NAME = "self_evaluation.json"
DOCX_NAME = "自评报告.docx"
HTML_NAME = "自评报告.html"
MD_NAME = "自评报告.md"
XLSX_NAME = "自评表.xlsx"
CHART_NAME = "执行进度.png"
UNIT_CHART_NAME = "单位执行率.png"

# ---------------------------------------------------------------- numbers

def _wan(yuan: str) -> str:
    """The JSON's 元 text -> 万元 text, through integer fen (one formatting rule for money)."""
    return fen_to_wanyuan_str(yuan_str_to_fen(yuan))


def _f2(value: Decimal) -> float:
    return float(round2(Decimal(value)))


# ---------------------------------------------------------------- the dict

def build_self_evaluation(
    cfg: FundConfig,
    goals: pd.DataFrame,
    actuals: Mapping[str, Actual],
    budget: Mapping[str, int],
    monthly: Sequence[Mapping[str, Any]],
    quarters: Sequence[Mapping[str, Any]],
    units: Sequence[Mapping[str, Any]],
    *,
    causes: Mapping[int, str] | None = None,
) -> dict[str, Any]:
    """The self_evaluation.json dict (data-contract.md "Outputs").

    ``budget`` holds integer fen: initial_fen, adjusted_fen, executed_fen.
    ``monthly``/``quarters``/``units`` arrive in contract shape and are copied.
    ``causes`` (quarter -> cause text) defaults to ``cfg.lag_causes`` if the
    schema has it.
    """
    initial, adjusted, executed = (int(budget[k]) for k in ("initial_fen", "adjusted_fen", "executed_fen"))
    # Exact: the score and "met" come from this, only the presented rate is rounded.
    exact_rate = Fraction(executed * 100, adjusted) if adjusted else Fraction(0)
    sheet = score_fund(goals, actuals, exact_rate, cfg.scoring)
    rate = sheet.execution_rate  # 2 dp, for the report
    indicators = [i.to_json() for i in sheet.indicators]
    if causes is None:
        causes = getattr(cfg, "lag_causes", None)
    story = build_narrative(
        quarters, indicators, units, execution_rate=rate, execution_met=sheet.execution_met,
        unspent_fen=adjusted - executed, causes=causes,
    )
    return {
        "fund": {"code": cfg.code, "name": cfg.name, "year": cfg.year, "department": cfg.department},
        "budget": {
            "initial_yuan": fen_to_yuan_str(initial),
            "adjusted_yuan": fen_to_yuan_str(adjusted),
            "executed_yuan": fen_to_yuan_str(executed),
            "execution_rate": _f2(rate),
        },
        "monthly": [dict(m) for m in monthly],
        "quarters": [dict(q) for q in quarters],
        "units": [dict(u) for u in units],
        "indicators": indicators,
        "execution_score": {"weight": _f2(sheet.execution_weight), "score": _f2(sheet.execution_score)},
        "total_score": _f2(sheet.total),
        "grade": sheet.grade,
        "problems": story.problems,
        "improvements": story.improvements,
    }


# ---------------------------------------------------------------- bounded rendering
#
# fund.yaml carries jinja text written by people (achievement_templates),
# rendered in the sandbox. The sandbox stops unsafe attribute access, and
# bounds a single range() to MAX_RANGE (100 000) items, but nothing bounds
# time: two nested range(100000) loops run 10^10 iterations, `9 ** 9 ** 9`
# is one C call that never returns (and jinja would even constant-fold it
# while compiling), and squaring a number in a 40-step loop builds integers
# of billions of digits.
#
# What was considered, and why this:
# - A thread with a deadline: the caller gets its error, but a Python thread
#   cannot be stopped; the runaway render burns a core until the process
#   ends (an Airflow worker lives on).
# - SIGALRM/setitimer: main thread only, and a signal handler runs only
#   between bytecodes, so it does not stop `9 ** 9 ** 9` either.
# - sys.settrace: per-line callbacks make every render several times slower.
# - A child process per render, killed at the deadline: truly bounded, but a
#   fork of a process holding pandas and matplotlib for every small fragment
#   costs more than the fragment, times thousands of funds in the benchmark.
# - Chosen: cooperative checks compiled into the template itself. Time in a
#   template can only be spent (a) in loop iterations, (b) in calls (macros,
#   recursive loops, filters called as functions) and (c) in single operators
#   on huge values. (a) the code generator wraps every for-loop's iterable in
#   a generator that checks the deadline before each item
#   (``Environment.code_generator_class`` is jinja's documented hook for
#   changing the compiled code); (b) the sandbox's ``call`` checks it too;
#   (c) ``*`` and ``**`` are intercepted (which also stops constant folding)
#   and refuse results beyond _MAX_ITEMS items or _MAX_INT_BITS bits, so
#   every remaining single operation is small. Checks cost one monotonic()
#   per iteration. The report's own templates (html, md, docx) are compiled
#   the same way, so a data-driven loop there is bounded too.
# Not bounded here: memory of a value built by repeated concatenation (it
# ends in MemoryError, reported as a RenderError like any other failure).

RENDER_TIMEOUT_ENV = "BUDGET_MONITOR_RENDER_TIMEOUT_S"
DEFAULT_RENDER_TIMEOUT_S = 30.0
_MAX_ITEMS = 100_000  # longest string/list a template may build with `*` (jinja's MAX_RANGE)
_MAX_INT_BITS = 100_000  # largest integer a template may build with `*` or `**` (~30 000 digits)


class RenderError(RuntimeError):
    """A report template failed: an error in it, an operation the sandbox refuses, or the time bound."""


class RenderTimeout(RenderError):
    """A template render ran past BUDGET_MONITOR_RENDER_TIMEOUT_S and was stopped."""


def render_timeout_s() -> float:
    """The bound of one template render, in seconds (env BUDGET_MONITOR_RENDER_TIMEOUT_S)."""
    raw = os.environ.get(RENDER_TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_RENDER_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        raise RenderError(f"环境变量 {RENDER_TIMEOUT_ENV}={raw!r} 不是秒数；请设为正数（默认 30）") from None
    if not value > 0:
        raise RenderError(f"环境变量 {RENDER_TIMEOUT_ENV}={raw!r} 须为正数（默认 30）")
    return value


_render = threading.local()  # deadline, limit, what: of the render running in this thread


def _check_deadline() -> None:
    deadline = getattr(_render, "deadline", None)
    if deadline is not None and time.monotonic() > deadline:
        raise RenderTimeout(
            f"{_render.what}渲染超过 {_render.limit:g} 秒仍未完成，已中止；请检查其中的循环和数值运算"
            f"（时限由环境变量 {RENDER_TIMEOUT_ENV} 设定）")


@contextmanager
def _rendering(what: str, *, user_text: bool) -> Iterator[None]:
    """Bound the renders inside (a nested scope keeps the outer deadline) and
    turn their failures into RenderError naming ``what``.

    ``user_text``: the template comes from fund.yaml, so any exception in it
    is the template's (the sandbox's own advice: catch everything); in the
    report's own templates only jinja's errors are, anything else is a bug.
    """
    from jinja2 import TemplateError
    from jinja2.exceptions import SecurityError

    outer = getattr(_render, "deadline", None)
    if outer is None:
        limit = render_timeout_s()
        _render.deadline, _render.limit, _render.what = time.monotonic() + limit, limit, what
    try:
        yield
    except RenderError:
        raise
    except SecurityError as exc:
        raise RenderError(f"{what}执行了模板沙箱不允许的操作（{_one_line(exc)}）；请改正后重试") from exc
    except TemplateError as exc:
        raise RenderError(f"{what}有错误（{_one_line(exc)}）；请改正后重试") from exc
    except Exception as exc:
        if not user_text:
            raise
        raise RenderError(f"{what}渲染失败（{type(exc).__name__}: {_one_line(exc)}）；请改正后重试") from exc
    finally:
        if outer is None:
            _render.deadline = None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200] + ("…" if len(text) > 200 else "")


def _bounded_iter(iterable: Iterable[Any]) -> Iterator[Any]:
    for item in iterable:
        _check_deadline()
        yield item


def _bounded_codegen():  # -> type[jinja2.compiler.CodeGenerator]
    from jinja2 import nodes
    from jinja2.compiler import CodeGenerator

    def bounded(node):  # -> nodes.Call: environment.bm_bounded_iter(<iter>)
        return nodes.Call(nodes.EnvironmentAttribute("bm_bounded_iter"), [node], [], None, None,
                          lineno=node.lineno)

    def is_bounded(node) -> bool:
        return (isinstance(node, nodes.Call) and isinstance(node.node, nodes.EnvironmentAttribute)
                and node.node.name == "bm_bounded_iter")

    class BoundedCodeGenerator(CodeGenerator):
        # jinja allows no custom node types: the wrapper is an ordinary call of
        # an environment attribute, put in place of the loop's iterable.
        def visit_For(self, node, frame):  # noqa: N802 (jinja's visitor names)
            if not is_bounded(node.iter):
                node.iter = bounded(node.iter)
            super().visit_For(node, frame)

    return BoundedCodeGenerator


@lru_cache(maxsize=1)
def _bounded_mixin() -> type:
    class Bounded:
        """Mixed into every report Environment: loops compiled with deadline checks."""

        code_generator_class = _bounded_codegen()
        bm_bounded_iter = staticmethod(_bounded_iter)

    return Bounded


def _int_bits(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value.bit_length()
    if isinstance(value, Fraction):
        return max(value.numerator.bit_length(), value.denominator.bit_length())
    return None


def _bounded_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse a ``*`` or ``**`` whose result would be too big to build in bounded time."""
    from jinja2.exceptions import SecurityError

    lb, rb = _int_bits(left), _int_bits(right)
    if operator == "**" and lb is not None and isinstance(right, int) and not isinstance(right, bool):
        if lb > 1 and lb * abs(right) > _MAX_INT_BITS:
            raise SecurityError(f"乘方结果过大（超过 {_MAX_INT_BITS} 位二进制）")
    elif operator == "*":
        if lb is not None and rb is not None and lb + rb > _MAX_INT_BITS:
            raise SecurityError(f"乘积过大（超过 {_MAX_INT_BITS} 位二进制）")
        for seq, n in ((left, right), (right, left)):
            if isinstance(n, int) and hasattr(seq, "__len__") and not isinstance(seq, (int, float)):
                if len(seq) * n > _MAX_ITEMS:
                    raise SecurityError(f"重复生成的序列过长（超过 {_MAX_ITEMS} 项）")


# ---------------------------------------------------------------- texts

@lru_cache(maxsize=1)
def _text_env():  # -> jinja2.sandbox.SandboxedEnvironment
    # fund.yaml templates are data written by people: render them sandboxed, bounded.
    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    class BoundedSandbox(_bounded_mixin(), SandboxedEnvironment):
        intercepted_binops = frozenset({"*", "**"})

        def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805,B902 (jinja's signature)
            _check_deadline()
            return super().call(__context, __obj, *args, **kwargs)

        def call_binop(self, context, operator, left, right):
            _check_deadline()
            _bounded_binop(operator, left, right)
            return super().call_binop(context, operator, left, right)

    return BoundedSandbox(autoescape=False, undefined=StrictUndefined, keep_trailing_newline=False)


@lru_cache(maxsize=256)
def _achievement_template(source: str):  # -> jinja2.Template
    return _text_env().from_string(source)


def render_fund_text(source: str, what: str = "fund.yaml 中的模板", **context: Any) -> str:
    """Render jinja text from fund.yaml in the bounded sandbox; failures raise RenderError naming ``what``."""
    with _rendering(what, user_text=True):
        return _achievement_template(source).render(**context)


class _Actuals(dict):
    """actual['名称'] in achievement templates; unknown names read as 未取得."""

    def __missing__(self, key: str) -> str:
        return load_texts()["basic"]["actual_missing"]


_NUMBERED = re.compile(r"^\s*\d+\s*[.．、]")


def _numbered(items: Sequence[str]) -> list[str]:
    return [t if _NUMBERED.match(t) else f"{i}.{t}" for i, t in enumerate(items, start=1)]


def report_sections(evaluation: Mapping[str, Any], cfg: FundConfig) -> dict[str, Any]:
    """The report's texts and table rows, shared by the docx, html and md renderers."""
    t = load_texts()
    b = evaluation["budget"]
    name = evaluation["fund"]["name"]
    initial, adjusted, executed = (_wan(b[k]) for k in ("initial_yuan", "adjusted_yuan", "executed_yuan"))
    # The seed opens with the region ("江门市2021年…专项资金"); the fund name itself may not carry it.
    region = cfg.region if cfg.region and not name.startswith(cfg.region) else ""
    basic = t["basic"]["budget"].format(name=region + name, adjusted=adjusted, executed=executed,
                                        rate=plain_number(b["execution_rate"]))
    if initial != adjusted:
        basic += t["basic"]["adjusted_differs"].format(initial=initial, adjusted=adjusted)
    if cfg.uses:
        basic += t["basic"]["uses"].format(uses=cfg.uses.rstrip("。"))

    s = t["score"]
    grade = evaluation["grade"]
    score_text = (
        (s["basis"].format(basis=cfg.basis_document) if cfg.basis_document else s["no_basis"])
        + s["effect"].get(grade, s["effect_default"]).format(name=name)
        + s["result"].format(score=plain_number(evaluation["total_score"]), grade=grade)
    )

    indicators = evaluation["indicators"]
    missing = t["basic"]["actual_missing"]
    actual = _Actuals({i["name"]: (i["actual"] if i["actual"] is not None else missing) for i in indicators})
    if cfg.achievement_templates:
        achievements = [
            render_fund_text(src, f"fund.yaml 的 achievement_templates 第{n}条", actual=actual, fund=cfg,
                             indicators=indicators).strip()
            for n, src in enumerate(cfg.achievement_templates, start=1)
        ]
    else:
        achievements = [
            t["basic"]["achievement_default"].format(name=i["name"], target=i["target"], actual=actual[i["name"]])
            for i in indicators
        ]

    ex = evaluation["execution_score"]
    table = {
        "initial_wan": initial,
        "adjusted_wan": adjusted,
        "executed_wan": executed,
        "exec_weight": plain_number(ex["weight"]),
        "exec_rate": f"{plain_number(b['execution_rate'])}%",
        "exec_score": plain_number(ex["score"]),
        "total_weight": plain_number(sum(Decimal(str(i["weight"])) for i in indicators) + Decimal(str(ex["weight"]))),
        "total_score": plain_number(evaluation["total_score"]),
    }
    rows = [
        {
            "level1": i["level1"], "level2": i["level2"], "name": i["name"], "target": i["target"],
            "actual": i["actual"] if i["actual"] is not None else missing,
            "weight": plain_number(i["weight"]), "score": plain_number(i["score"]), "deviation": i["deviation"],
        }
        for i in indicators
    ]
    unit_rows = [
        {
            "unit": u["unit"],
            "budget_wan": _wan(u["budget_yuan"]) if u.get("budget_yuan") is not None else "",
            "executed_wan": _wan(u["executed_yuan"]) if u.get("executed_yuan") is not None else "",
            "rate": f"{plain_number(u['execution_rate'])}%" if u.get("execution_rate") is not None else "",
            "lagging": quarter_phrase(u.get("lagging_quarters") or []) or "无",
        }
        for u in evaluation.get("units", [])
    ]
    return {
        "fund_name": name,
        "department": evaluation["fund"]["department"],
        "year": evaluation["fund"]["year"],
        "basic": basic,
        "goal_paragraphs": _numbered(cfg.goal_paragraphs),
        "score_text": score_text,
        "achievements": _numbered(achievements),
        "problems": list(evaluation["problems"]),
        "improvements": list(evaluation["improvements"]),
        "table": table,
        "indicators": rows,
        "units": unit_rows,
        "grade": grade,
        "chart": CHART_NAME,
        "unit_chart": UNIT_CHART_NAME if unit_rows else None,
        "draft_notice": DRAFT_NOTICE if evaluation.get("draft") else "",
    }


# A report made before December is closed (``year-end --draft``): every
# output says so at its top, and it is never mailed (pipeline.run_year_end).
DRAFT_NOTICE = "【草稿】本年度12月尚未结账，数据不完整，仅供预览，不得报送。"


# ---------------------------------------------------------------- html / md

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")
# Line starts that would open a heading, quote or list (an ordered list needs a space after "1.").
_MD_LINE_START = re.compile(r"^(\s*)([#>+\-]|\d+[.)](?=\s|$))", re.MULTILINE)


def md_escape(value: Any) -> str:
    """Escape text from data for Markdown: no markup, no raw HTML, no list/heading starts."""
    if value is None:
        return ""
    s = str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    s = _MD_SPECIAL.sub(r"\\\1", s)
    s = _MD_LINE_START.sub(lambda m: m.group(1) + m.group(2)[:-1] + "\\" + m.group(2)[-1], s)
    return s.replace("\r", " ").replace("\n", " ")


@lru_cache(maxsize=1)
def _html_env():  # -> jinja2.Environment
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    class HtmlEnvironment(_bounded_mixin(), Environment):
        pass

    return HtmlEnvironment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=True, undefined=StrictUndefined,
                           trim_blocks=True, lstrip_blocks=True)


@lru_cache(maxsize=1)
def _md_env():  # -> jinja2.Environment
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    class MdEnvironment(_bounded_mixin(), Environment):
        pass

    # finalize escapes every {{ }} output, so no data value can slip through unescaped.
    return MdEnvironment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=False, undefined=StrictUndefined,
                         finalize=md_escape, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)


def render_html(sections: Mapping[str, Any]) -> str:
    with _rendering("报告模板 report.html.j2", user_text=False):
        return _html_env().get_template("report.html.j2").render(**sections)


def render_markdown(sections: Mapping[str, Any]) -> str:
    with _rendering("报告模板 report.md.j2", user_text=False):
        return _md_env().get_template("report.md.j2").render(**sections)


# ---------------------------------------------------------------- docx

@lru_cache(maxsize=1)
def _docx_template_bytes() -> bytes:
    if not DOCX_TEMPLATE.is_file():
        raise FileNotFoundError(f"找不到自评报告模板 {DOCX_TEMPLATE}；请运行 scripts/make_report_template.py 生成")
    return DOCX_TEMPLATE.read_bytes()


@lru_cache(maxsize=1)
def _docx_env():  # -> jinja2.Environment
    """The jinja environment docxtpl renders our template with, compiling each source once.

    docxtpl compiles the patched document.xml with ``env.from_string`` on every
    render, and neither it nor jinja caches string templates: that compile
    was ~11 ms of a ~35 ms render (bench/profile.py yearend). The source is
    the same string for every report (one template, patched the same way), so
    a small cache keyed by the source text is exact. By hand because docxtpl
    offers no hook but the environment.
    """
    import threading

    from jinja2 import Environment

    class _CompileOnce(_bounded_mixin(), Environment):
        def __init__(self, **options: Any) -> None:
            super().__init__(**options)
            self._compiled: dict[str, Any] = {}
            self._lock = threading.Lock()

        def from_string(self, source, globals=None, template_class=None):  # noqa: A002 (jinja's name)
            if globals is not None or template_class is not None or not isinstance(source, str):
                return super().from_string(source, globals, template_class)
            with self._lock:
                template = self._compiled.get(source)
                if template is None:
                    if len(self._compiled) >= 16:  # bounded: headers, footers, properties are few
                        self._compiled.clear()
                    template = self._compiled[source] = super().from_string(source)
            return template

    return _CompileOnce(autoescape=True)


def write_docx(sections: Mapping[str, Any], path: Path, chart: Path | None, unit_chart: Path | None) -> Path:
    """Render the Word report to ``path`` (atomically: a failed save leaves nothing)."""
    from docx.shared import Mm
    from docxtpl import DocxTemplate, InlineImage

    tpl = DocxTemplate(BytesIO(_docx_template_bytes()))
    context = dict(sections)
    context["chart"] = InlineImage(tpl, str(chart), width=Mm(150)) if chart else ""
    context["unit_chart"] = InlineImage(tpl, str(unit_chart), width=Mm(150)) if unit_chart else None
    with _rendering(f"自评报告 Word 模板 {DOCX_TEMPLATE.name}", user_text=False):
        tpl.render(context, jinja_env=_docx_env(), autoescape=True)
    if sections.get("draft_notice"):
        tpl.docx.paragraphs[0].insert_paragraph_before().add_run(sections["draft_notice"]).bold = True
    # Into memory first: a zip writer failing half-way on disk (full, EFBIG) stays
    # unclosed and retries the write when collected, noise on stderr (atomic.py).
    buf = BytesIO()
    tpl.save(buf)
    atomic.write_bytes(path, buf.getvalue())
    return path


# ---------------------------------------------------------------- xlsx

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _put(ws, row: int, col: int, value: Any, style: str | None = None):
    """Write one cell; text from data that a spreadsheet could run is stored inert."""
    cell = ws.cell(row=row, column=col)
    if value is not None:
        cell.value = value
    if style:
        cell.style = style
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        # A string cell with Excel's quote prefix: shown as typed, never evaluated
        # (set after the named style, which would reset the prefix).
        cell.data_type = "s"
        cell.quotePrefix = True
    return cell


@lru_cache(maxsize=1)
def _xlsx_styles() -> dict[str, Any]:
    from openpyxl.styles import Alignment, Border, Font, NamedStyle, PatternFill, Side

    thin = Side(style="thin", color="000000")
    border = Border(left=thin, right=thin, top=thin, bottom=thin)

    def named(name: str, *, bold: bool = False, fill: str | None = None, wrap: bool = True,
              horizontal: str = "center", size: float = 11, fmt: str = "General", bordered: bool = True):
        st = NamedStyle(name=name)
        st.font = Font(name="仿宋", size=size, bold=bold)
        st.alignment = Alignment(horizontal=horizontal, vertical="center", wrap_text=wrap)
        if bordered:
            st.border = border
        if fill:
            st.fill = PatternFill("solid", fgColor=fill)
        st.number_format = fmt
        return st

    return {
        "title": named("bm_title", bold=True, size=16, bordered=False),
        "head": named("bm_head", bold=True, fill="E7ECF3"),
        "text": named("bm_text"),
        "left": named("bm_left", horizontal="left"),
        "money": named("bm_money", fmt="#,##0.00"),
        "num": named("bm_num", fmt="0.00"),
        "pct": named("bm_pct", fmt='0.00"%"'),
    }


def write_xlsx(evaluation: Mapping[str, Any], path: Path) -> Path:
    from openpyxl import Workbook

    styles = _xlsx_styles()
    wb = Workbook()
    for st in styles.values():
        wb.add_named_style(st)
    ws = wb.active
    ws.title = "自评表"
    fund, b, ex = evaluation["fund"], evaluation["budget"], evaluation["execution_score"]

    merges = ["A1:H1"]  # merged after all cells got their borders
    draft = "（草稿）" if evaluation.get("draft") else ""
    _put(ws, 1, 1, f"{fund['year']}年度项目支出绩效自评表{draft}", "bm_title")
    ws.row_dimensions[1].height = 30
    for r, (label, value) in enumerate([("项目名称", fund["name"]), ("主管部门", fund["department"])], start=2):
        _put(ws, r, 1, label, "bm_head")
        merges.append(f"B{r}:H{r}")
        for c in range(2, 9):
            _put(ws, r, c, None, "bm_left")
        _put(ws, r, 2, value, "bm_left")

    _put(ws, 4, 1, "资金情况（万元）", "bm_head")
    for c, h in enumerate(["年初预算数", "全年预算数", "全年执行数", "分值", "执行率", "得分"], start=2):
        _put(ws, 4, c, h, "bm_head")
    _put(ws, 5, 1, "年度资金总额", "bm_text")
    for c, key in enumerate(["initial_yuan", "adjusted_yuan", "executed_yuan"], start=2):
        _put(ws, 5, c, float(_wan(b[key])), "bm_money")
    _put(ws, 5, 5, ex["weight"], "bm_num")
    _put(ws, 5, 6, b["execution_rate"], "bm_pct")
    _put(ws, 5, 7, ex["score"], "bm_num")
    _put(ws, 5, 8, None, "bm_text")

    heads = ["一级指标", "二级指标", "三级指标", "年度指标值", "实际完成值", "分值", "得分", "偏差原因分析及改进措施"]
    for c, h in enumerate(heads, start=1):
        _put(ws, 6, c, h, "bm_head")
    row = 7
    for i in evaluation["indicators"]:
        values = [i["level1"], i["level2"], i["name"], i["target"],
                  i["actual"] if i["actual"] is not None else "未取得", i["weight"], i["score"], i["deviation"]]
        for c, v in enumerate(values, start=1):
            _put(ws, row, c, v, "bm_num" if c in (6, 7) else ("bm_left" if c in (3, 8) else "bm_text"))
        row += 1
    merges.append(f"A{row}:E{row}")
    for c in range(1, 6):
        _put(ws, row, c, None, "bm_head")
    _put(ws, row, 1, "总分", "bm_head")
    total_weight = sum(Decimal(str(i["weight"])) for i in evaluation["indicators"]) + Decimal(str(ex["weight"]))
    _put(ws, row, 6, float(total_weight), "bm_num")
    _put(ws, row, 7, evaluation["total_score"], "bm_num")
    _put(ws, row, 8, f"绩效等级：{evaluation['grade']}", "bm_head")

    for rng in merges:
        ws.merge_cells(rng)
    for col, width in zip("ABCDEFGH", [14, 14, 26, 14, 14, 10, 10, 44]):
        ws.column_dimensions[col].width = width
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    ws.page_setup.orientation = "landscape"
    ws.page_setup.fitToWidth = 1
    ws.print_title_rows = "6:6"
    buf = BytesIO()  # into memory first, as write_docx
    wb.save(buf)
    atomic.write_bytes(path, buf.getvalue())
    return path


# ---------------------------------------------------------------- all outputs

def write_outputs(evaluation: Mapping[str, Any], cfg: FundConfig, out_dir: str | Path) -> list[Path]:
    """Write every output file of one fund-year into ``out_dir``; return their paths.

    All or nothing: each file is written under a temporary name and they are
    renamed into place together at the end (:func:`atomic.staged`), so a full
    disk, a template error or an exception half-way leaves ``out_dir`` with
    the files it had before (a previous year-end's report stays whole) and no
    temporary file. Temporary files of a killed earlier run are swept first.
    Directories created and files written are owner-only (``paths.file_mode``:
    0600, 0640 with BUDGET_MONITOR_SHARED_GROUP=1); an existing ``out_dir``
    keeps its mode.
    """
    from budget_monitor.charts import execution_chart, unit_chart
    from budget_monitor.paths import file_mode, private_dir

    out = private_dir(out_dir)  # reports hold payment data: owner-only unless shared (paths.py)
    atomic.remove_stale_temps(out)
    names: list[str] = []
    with atomic.staged(out, mode=file_mode()) as stage:
        chart = execution_chart(evaluation["monthly"], evaluation["quarters"], stage.path(CHART_NAME),
                                title=f"{evaluation['fund']['year']}年累计支出进度与序时进度")
        names.append(CHART_NAME)
        units_png = None
        if evaluation.get("units"):
            units_png = unit_chart(evaluation["units"], stage.path(UNIT_CHART_NAME))
            names.append(UNIT_CHART_NAME)

        stage.write_text(JSON_NAME, json.dumps(evaluation, ensure_ascii=False, indent=2) + "\n")
        names.append(JSON_NAME)

        sections = report_sections(evaluation, cfg)
        write_docx(sections, stage.path(DOCX_NAME), chart, units_png)
        names.append(DOCX_NAME)
        stage.write_text(HTML_NAME, render_html(sections))
        names.append(HTML_NAME)
        stage.write_text(MD_NAME, render_markdown(sections))
        names.append(MD_NAME)
        write_xlsx(evaluation, stage.path(XLSX_NAME))
        names.append(XLSX_NAME)
    return [out / name for name in names]
