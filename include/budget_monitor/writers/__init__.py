"""The year-end writers: one module per output, one row each in :data:`WRITERS`.

Every writer reads the typed model (yearend.YearEnd) and formats money and
rates only at its own edge; none reads a formatted number back. A ``file``
writer is ``write(model, out) -> [names]`` and writes into ``out.stage``, the
all-or-nothing staging directory of :func:`write_outputs`; the ``mail``
writer composes the year-end mail from the model and the written paths.

To add an output format: one module here with a ``write(model, out)``, and
one row in :data:`WRITERS` (its place in the table is its place in the run:
a writer may use what an earlier one wrote, ``out.written``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from budget_monitor.writers import (
    chart_writer,
    docx_writer,
    html_writer,
    json_writer,
    mail_writer,
    md_writer,
    xlsx_writer,
)
from budget_monitor.yearend import YearEnd

if TYPE_CHECKING:
    from budget_monitor.alerts import Alert
    from budget_monitor.atomic import Staging
    from budget_monitor.config import FundConfig

__all__ = ["Output", "Writer", "WRITERS", "write_outputs", "year_end_mail"]


@dataclass
class Output:
    """What a file writer writes into: the fund's config, the staging directory,
    the files written so far (name -> staged path) and the shared report sections."""

    cfg: FundConfig
    stage: Staging
    written: dict[str, Path] = field(default_factory=dict)
    _sections: dict[str, Any] | None = field(default=None, repr=False)

    def sections(self, model: YearEnd) -> dict[str, Any]:
        """The report's texts (writers/sections.py), built once for docx, html and md."""
        if self._sections is None:
            from budget_monitor.writers.sections import report_sections

            self._sections = report_sections(model, self.cfg)
        return self._sections


@dataclass(frozen=True)
class Writer:
    name: str
    kind: str  # "file": write(model, out) -> names written; "mail": compose(model, cfg, paths, ...)
    run: Callable[..., Any]
    files: tuple[str, ...] = ()  # the file names it may write


WRITERS: tuple[Writer, ...] = (
    # The charts first: the Word report embeds them.
    Writer("charts", "file", chart_writer.write, (chart_writer.CHART_NAME, chart_writer.UNIT_CHART_NAME)),
    Writer("json", "file", json_writer.write, (json_writer.JSON_NAME,)),
    Writer("docx", "file", docx_writer.write, (docx_writer.DOCX_NAME,)),
    Writer("html", "file", html_writer.write, (html_writer.HTML_NAME,)),
    Writer("md", "file", md_writer.write, (md_writer.MD_NAME,)),
    Writer("xlsx", "file", xlsx_writer.write, (xlsx_writer.XLSX_NAME,)),
    Writer("mail", "mail", mail_writer.year_end_email),
)


def write_outputs(
    model: YearEnd, cfg: FundConfig, out_dir: str | Path, writers: Sequence[Writer] = WRITERS
) -> list[Path]:
    """Run every file writer into ``out_dir``; return the paths written, in order.

    All or nothing: each file is written under a temporary name and they are
    renamed into place together at the end (:func:`atomic.staged`), so a full
    disk, a template error or an exception half-way leaves ``out_dir`` with
    the files it had before (a previous year-end's report stays whole) and no
    temporary file. Temporary files of a killed earlier run are swept first.
    Directories created and files written are owner-only (``paths.file_mode``:
    0600, 0640 with BUDGET_MONITOR_SHARED_GROUP=1); an existing ``out_dir``
    keeps its mode.
    """
    from budget_monitor import atomic
    from budget_monitor.paths import file_mode, private_dir

    out_path = private_dir(out_dir)  # reports hold payment data: owner-only unless shared (paths.py)
    atomic.remove_stale_temps(out_path)
    with atomic.staged(out_path, mode=file_mode()) as stage:
        out = Output(cfg, stage)
        for writer in writers:
            if writer.kind != "file":
                continue
            for name in writer.run(model, out):
                out.written[name] = stage.path(name)
    return [out_path / name for name in out.written]


def year_end_mail(
    model: YearEnd, cfg: FundConfig, paths: Sequence[Path] = (), *, writers: Sequence[Writer] = WRITERS, **options: Any
) -> Alert:
    """The year-end mail, composed by the table's mail writer."""
    (mail,) = [w for w in writers if w.kind == "mail"]
    return mail.run(model, cfg, paths, **options)


def by_name(writers: Sequence[Writer] = WRITERS) -> Mapping[str, Writer]:
    return {w.name: w for w in writers}
