"""Where a year-end report came from: the input files, the code and the rules behind it.

:func:`read_provenance` reads the store's file and load records
(``source_file``, the fact tables' ``source_file_id``, ``audit``) into a
:class:`Provenance`: every file loaded for the fund-year with its sha256,
rows, load time, how many of its rows are still in force and which later
files corrected it; plus fund.yaml's sha256, the code version and digests of
the package's rules and templates. self_evaluation.json carries it and the
report's 数据来源 appendix lists it, so an auditor can find every input file
again by its digest.

The clock is injectable: ``SOURCE_DATE_EPOCH`` (the reproducible-builds
convention, seconds since 1970) fixes the generation time, as the golden
tests do; otherwise it is now, Asia/Shanghai.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterable
from datetime import datetime
from functools import lru_cache
from pathlib import Path

from sqlalchemy import Engine, func, select

from budget_monitor import store
from budget_monitor.periods import TZ
from budget_monitor.yearend import InputFile, Provenance

__all__ = [
    "InputFile",
    "Provenance",
    "generation_time",
    "code_version",
    "files_digest",
    "rules_digest",
    "templates_digest",
    "input_files",
    "read_provenance",
]

PACKAGE = Path(__file__).resolve().parent
RULES_DIR = PACKAGE / "rules"
TEMPLATES_DIR = PACKAGE / "templates"
FUND_YAML = "fund.yaml"


def generation_time() -> datetime:
    """Now in Asia/Shanghai to the second, or ``SOURCE_DATE_EPOCH`` when set."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if epoch:
        return datetime.fromtimestamp(int(epoch), TZ)
    return datetime.now(TZ).replace(microsecond=0)


@lru_cache(maxsize=1)
def code_version() -> str:
    """The package version, with the git commit when the code runs from a checkout
    ("0.1.0+g2891cc8"); an image without git gives the version alone."""
    from budget_monitor import __version__

    try:
        sha = subprocess.run(
            ["git", "-C", str(PACKAGE), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return __version__
    return f"{__version__}+g{sha}" if sha else __version__


def files_digest(paths: Iterable[Path], root: Path) -> str:
    """sha256 over the lines "<path relative to root>  <sha256 of the file>\\n", sorted by path
    (the sha256sum format, so the digest can be recomputed with shell tools)."""
    lines = sorted(f"{p.relative_to(root).as_posix()}  {store.sha256_of(p)}\n" for p in paths if p.is_file())
    return hashlib.sha256("".join(lines).encode("utf-8")).hexdigest()


def _package_files(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]


def rules_digest() -> str:
    """Digest of rules/ (validation rules, table specs, narrative texts)."""
    return files_digest(_package_files(RULES_DIR), RULES_DIR)


def templates_digest() -> str:
    """Digest of templates/ (report, mail and the Word template)."""
    return files_digest(_package_files(TEMPLATES_DIR), TEMPLATES_DIR)


def _rows_in_force(engine: Engine, fund_code: str) -> dict[int, int]:
    """source_file id -> rows of it in the fact tables now."""
    counts: dict[int, int] = {}
    with engine.connect() as conn:
        for spec in store.FACTS.values():
            t = spec.table
            for file_id, n in conn.execute(
                select(t.c.source_file_id, func.count())
                .where(t.c.fund_code == fund_code, t.c.source_file_id.is_not(None))
                .group_by(t.c.source_file_id)
            ):
                counts[int(file_id)] = counts.get(int(file_id), 0) + int(n)
    return counts


def _corrections(engine: Engine, fund_code: str) -> dict[int, int]:
    """source_file id -> values it changed in rows stored before it (audit rows)."""
    a = store.audit
    with engine.connect() as conn:
        return {
            int(fid): int(n)
            for fid, n in conn.execute(
                select(a.c.source_file_id, func.count())
                .where(a.c.fund_code == fund_code, a.c.source_file_id.is_not(None))
                .group_by(a.c.source_file_id)
            )
        }


def input_files(engine: Engine, fund_code: str) -> list[InputFile]:
    """Every file loaded for the fund, in load order.

    ``corrected_by``: for budget/goals (a new file replaces the whole set),
    the file in force when this one is not; for a fact file with rows no
    longer in force, the later files of its kind that changed stored values.
    The store keeps, for a replaced row, its key and the correcting file, not
    the file it came from: with several correcting files of one kind each is
    named for every earlier file that lost rows.
    """
    sf = store.source_file
    with engine.connect() as conn:
        files = list(conn.execute(select(sf).where(sf.c.fund_code == fund_code).order_by(sf.c.id)).mappings())
    in_force = _rows_in_force(engine, fund_code)
    changed = _corrections(engine, fund_code)
    current: dict[str, str] = {}  # snapshot kind -> name of the file in force
    for f in files:
        if f["kind"] in store.SNAPSHOT_KINDS and in_force.get(f["id"], 0):
            current[f["kind"]] = f["name"]
    out = []
    for f in files:
        kept = in_force.get(f["id"], 0)
        if f["kind"] in store.SNAPSHOT_KINDS:
            by = () if kept or f["kind"] not in current else (current[f["kind"]],)
        elif kept < f["rows"]:
            by = tuple(
                g["name"] for g in files if g["kind"] == f["kind"] and g["id"] > f["id"] and changed.get(g["id"])
            )
        else:
            by = ()
        out.append(InputFile(f["kind"], f["name"], f["sha256"], int(f["rows"]), kept, f["loaded_at"], by))
    return out


def read_provenance(
    engine: Engine, fund_code: str, fund_dir: Path | None = None, *, generated_at: datetime | None = None
) -> Provenance:
    """The provenance of a year-end made now (or at ``generated_at``) from the store."""
    inputs = input_files(engine, fund_code)
    if fund_dir is not None and (Path(fund_dir) / FUND_YAML).is_file():
        cfg_file = InputFile("fund", FUND_YAML, store.sha256_of(Path(fund_dir) / FUND_YAML), None, None, None)
        inputs.insert(0, cfg_file)
    return Provenance(
        generated_at=generated_at or generation_time(),
        code_version=code_version(),
        rules_sha256=rules_digest(),
        templates_sha256=templates_digest(),
        inputs=tuple(inputs),
    )
