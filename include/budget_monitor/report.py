"""Year-end self-evaluation: the report API and the template engine its writers share.

The year-end result is one typed model (yearend.YearEnd, built once by
``yearend.build_year_end``); each output is a writer of it
(``budget_monitor.writers``, one module each, one row each in ``WRITERS``):

=====================  ==================================================
self_evaluation.json   writers/json_writer.py: the contract's dict, UTF-8
自评报告.docx           writers/docx_writer.py: docxtpl, templates/self_evaluation_template.docx
自评报告.html           writers/html_writer.py: jinja2, autoescaped
自评报告.md             writers/md_writer.py: jinja2, every data value markdown/HTML-escaped
自评表.xlsx             writers/xlsx_writer.py: openpyxl; data text is never a formula
执行进度.png            writers/chart_writer.py: execution rate vs pace, lagging quarters shaded
单位执行率.png          writers/chart_writer.py: rate per budget unit (when there are units)
the year-end mail      writers/mail_writer.py (queued by pipeline.run_year_end)
=====================  ==================================================

This module keeps what the writers share: the bounded template rendering
(``BUDGET_MONITOR_RENDER_TIMEOUT_S``, default 30 s; :class:`RenderError`,
:class:`RenderTimeout`), the jinja environments and the docx engine, the
sandbox for fund.yaml's text; and the older dict API (``build_self_evaluation``,
``report_sections``, ``write_outputs`` taking a self_evaluation.json dict),
which reads the dict into the model (yearend.from_json) and goes through
the same writers.

Templates, the docx template bytes and the CJK font are loaded once per
process (module-level caches): the benchmark builds thousands of reports.
Every file is written through :func:`budget_monitor.atomic.staged`
(writers.write_outputs): a full disk or an error mid-way leaves the
directory with its old files and no temporary one.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from fractions import Fraction
from functools import lru_cache
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any

from budget_monitor import atomic
from budget_monitor.config import FundConfig
from budget_monitor.measures import Actual
from budget_monitor.writers.docx_writer import DOCX_NAME
from budget_monitor.writers.html_writer import HTML_NAME
from budget_monitor.writers.json_writer import JSON_NAME
from budget_monitor.writers.md_writer import MD_NAME
from budget_monitor.writers.sections import CHART_NAME, DRAFT_NOTICE, UNIT_CHART_NAME
from budget_monitor.writers.xlsx_writer import XLSX_NAME
from budget_monitor.yearend import YearEnd

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "JSON_NAME",
    "DOCX_NAME",
    "HTML_NAME",
    "MD_NAME",
    "XLSX_NAME",
    "CHART_NAME",
    "UNIT_CHART_NAME",
    "DRAFT_NOTICE",
    "RenderError",
    "RenderTimeout",
    "build_self_evaluation",
    "report_sections",
    "write_outputs",
    "write_docx",
    "write_xlsx",
    "render_html",
    "render_markdown",
    "render_fund_text",
    "md_escape",
]

TEMPLATES = Path(__file__).with_name("templates")
DOCX_TEMPLATE = TEMPLATES / "self_evaluation_template.docx"


# ---------------------------------------------------------------- the dict API


def _model(evaluation: YearEnd | Mapping[str, Any]) -> YearEnd:
    """The model itself, or a self_evaluation.json dict read into one."""
    if isinstance(evaluation, YearEnd):
        return evaluation
    from budget_monitor.yearend import from_json

    return from_json(evaluation)


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
    """The self_evaluation.json dict (data-contract.md "Outputs") from contract-shaped rows.

    ``budget`` holds integer fen: initial_fen, adjusted_fen, executed_fen;
    ``monthly``/``quarters``/``units`` are self_evaluation.json rows (read into
    the model's rows). ``causes`` (quarter -> cause text) defaults to
    ``cfg.lag_causes``. The pipeline builds the model from the execution
    result instead (yearend.build_year_end).
    """
    from budget_monitor.writers.json_writer import to_json
    from budget_monitor.yearend import assemble, month_from_json, quarter_from_json, unit_from_json

    model = assemble(
        cfg,
        goals,
        actuals,
        initial_fen=int(budget["initial_fen"]),
        adjusted_fen=int(budget["adjusted_fen"]),
        executed_fen=int(budget["executed_fen"]),
        monthly=[month_from_json(m) for m in monthly],
        quarters=[quarter_from_json(q) for q in quarters],
        units=[unit_from_json(u) for u in units],
        causes=causes,
        # No achievements renderer: the contract's shape, as this API always returned; the
        # 自评表 form is built from fund.yaml when the dict is written (form_layout.form_of).
    )
    return to_json(model)


def report_sections(evaluation: YearEnd | Mapping[str, Any], cfg: FundConfig) -> dict[str, Any]:
    """The report's texts and table rows, shared by the docx, html and md writers (writers/sections.py)."""
    from budget_monitor.writers.sections import report_sections as sections

    return sections(_model(evaluation), cfg)


def write_xlsx(evaluation: YearEnd | Mapping[str, Any], path: Path) -> Path:
    from budget_monitor.writers.xlsx_writer import write_xlsx as write

    return write(_model(evaluation), path)


def write_outputs(evaluation: YearEnd | Mapping[str, Any], cfg: FundConfig, out_dir: str | Path) -> list[Path]:
    """Write every output file of one fund-year into ``out_dir``, all or nothing; return their paths
    (writers.write_outputs: every file writer of writers.WRITERS)."""
    from budget_monitor.writers import write_outputs as write_all

    return write_all(_model(evaluation), cfg, out_dir)


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
            f"（时限由环境变量 {RENDER_TIMEOUT_ENV} 设定）"
        )


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
        return nodes.Call(nodes.EnvironmentAttribute("bm_bounded_iter"), [node], [], None, None, lineno=node.lineno)

    def is_bounded(node) -> bool:
        return (
            isinstance(node, nodes.Call)
            and isinstance(node.node, nodes.EnvironmentAttribute)
            and node.node.name == "bm_bounded_iter"
        )

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


# ---------------------------------------------------------------- html / md

# Backslash escapes (CommonMark: any ASCII punctuation), not HTML entities: "<" cannot open
# raw HTML or an autolink, "&" cannot start an entity, and ">=70%" reads as written.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~<&])")
# Line starts that would open a heading, quote or list (an ordered list needs a space after "1.").
_MD_LINE_START = re.compile(r"^(\s*)([#>+\-]|\d+[.)](?=\s|$))", re.MULTILINE)


def md_escape(value: Any) -> str:
    """Escape text from data for Markdown: no markup, no raw HTML, no list/heading starts."""
    if value is None:
        return ""
    s = _MD_SPECIAL.sub(r"\\\1", str(value))
    s = _MD_LINE_START.sub(lambda m: m.group(1) + m.group(2)[:-1] + "\\" + m.group(2)[-1], s)
    return s.replace("\r", " ").replace("\n", " ")


@lru_cache(maxsize=1)
def _html_env():  # -> jinja2.Environment
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    class HtmlEnvironment(_bounded_mixin(), Environment):
        pass

    return HtmlEnvironment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


@lru_cache(maxsize=1)
def _md_env():  # -> jinja2.Environment
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    class MdEnvironment(_bounded_mixin(), Environment):
        pass

    # finalize escapes every {{ }} output, so no data value can slip through unescaped.
    return MdEnvironment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=False,
        undefined=StrictUndefined,
        finalize=md_escape,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


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
    if "form" in sections:  # the 自评表 and the core properties (writers/docx_writer.py)
        from budget_monitor.writers.docx_writer import finish

        finish(tpl.docx, dict(sections))
    # Into memory first: a zip writer failing half-way on disk (full, EFBIG) stays
    # unclosed and retries the write when collected, noise on stderr (atomic.py).
    buf = BytesIO()
    tpl.save(buf)
    atomic.write_bytes(path, buf.getvalue())
    return path
