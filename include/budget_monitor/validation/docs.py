"""Great Expectations Data Docs of the rules and of a fund's files."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..ingest import IngestedTable, IngestError
from ..kinds import FACT_KINDS, LOAD_ORDER, SNAPSHOT_KINDS
from .context import ValidationContext
from .prepare import check_frame
from .rules import Rule, rules_for
from .runtime import RESULT_FORMAT, specs_for


def build_data_docs(
    out_dir: Path,
    items: Iterable[tuple[IngestedTable, ValidationContext]] | None = None,
    *,
    fund_dir: Path | None = None,
) -> Path:
    """Build Great Expectations Data Docs (HTML the finance office can open).

    A file-backed GX project is kept under ``out_dir`` (``gx/``), the site under
    ``out_dir/data_docs/index.html`` (returned). It always shows the suite of
    every table kind (the rules, with their Chinese messages in ``meta``) and
    a validation page for each ``(table, ctx)`` of ``items``; with
    ``fund_dir`` every file of that fund directory is read and validated
    against its fund.yaml, budget and goals. Not on the hot path (it re-runs
    the suites through Checkpoints with an UpdateDataDocsAction).
    """
    import great_expectations as gx
    from great_expectations.checkpoint import UpdateDataDocsAction
    from great_expectations.data_context.types.base import ProgressBarsConfig

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    context = gx.get_context(mode="file", project_root_dir=str(out_dir))
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    site = "budget_monitor_site"
    if site not in (context.get_site_names() or []):
        context.add_data_docs_site(
            site_name=site,
            site_config={
                "class_name": "SiteBuilder",
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(out_dir / "data_docs"),
                },
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )
    try:
        source = context.data_sources.get("budget_monitor")
    except (KeyError, ValueError, LookupError):
        source = context.data_sources.add_pandas("budget_monitor")

    def suite_for(name: str, rules: tuple[Rule, ...]) -> Any:
        suite = gx.ExpectationSuite(name=name, meta={"notes": "规则来自 rules/validation_rules.csv"})
        by_id = {r.rule_id: r for r in rules}
        for spec in specs_for(rules):
            cls = getattr(gx.expectations, spec.expectation)
            meta = {"rule_id": spec.rule_id, "severity": spec.severity, "column": spec.column}
            suite.add_expectation(cls(meta={**meta, "message_zh": by_id[spec.rule_id].message_zh}, **spec.kwargs))
        return context.suites.add_or_update(suite)

    for kind in LOAD_ORDER:
        suite_for(f"{kind}_rules", rules_for(kind))

    work = list(items or [])
    if fund_dir is not None:
        work.extend(_fund_items(Path(fund_dir)))
    for table, ctx in work:
        active = tuple(r for r in rules_for(table.kind) if all(ctx.has(x) for x in r.needs()))
        name = re.sub(r"[^0-9A-Za-z_-]+", "_", f"{table.kind}_{table.path.stem}_{table.sha256[:8]}")
        try:
            asset = source.get_asset(name)
        except (KeyError, ValueError, LookupError):
            asset = source.add_dataframe_asset(name)
        try:
            bd = asset.get_batch_definition("whole_file")
        except (KeyError, ValueError, LookupError):
            bd = asset.add_batch_definition_whole_dataframe("whole_file")
        suite = suite_for(name, active)
        vd = context.validation_definitions.add_or_update(gx.ValidationDefinition(name=name, data=bd, suite=suite))
        cp = context.checkpoints.add_or_update(
            gx.Checkpoint(
                name=name,
                validation_definitions=[vd],
                actions=[UpdateDataDocsAction(name="docs", site_names=[site])],
                result_format=RESULT_FORMAT,
            )
        )
        params = {k: v for k, v in ctx.gx_parameters().items() if any(k in r.parameters for r in active)}
        cp.run(batch_parameters={"dataframe": check_frame(table, active, ctx)}, expectation_parameters=params)
    context.build_data_docs(site_names=[site])
    return out_dir / "data_docs" / "index.html"


def _fund_items(fund_dir: Path) -> list[tuple[IngestedTable, ValidationContext]]:
    """Every readable table file of a fund directory with its context."""
    from ..config import load_fund_config
    from ..ingest import read_table
    from ..intake.files import fund_files

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
    out = [(t, ctx) for t in tables.values()]
    for kind in FACT_KINDS:
        for p in files.get(kind, []):
            try:
                out.append((read_table(p, kind), ctx))
            except IngestError:
                continue
    return out
