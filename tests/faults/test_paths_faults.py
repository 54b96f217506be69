"""Issue 13 item 10, files and paths: symlinks, unsafe fund codes, hostile and
long file names, owner-only permissions. Each test failed on the code before
the fix (symlinks were followed, ``..`` accepted, names with a newline or of
250 bytes broke quarantine and archive, everything was created 0755/0644).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from budget_monitor import store
from budget_monitor.config import FundConfigError, load_fund_config
from budget_monitor.ingest import read_table
from budget_monitor.names import NAME_MAX, fit_name, safe_name
from budget_monitor.paths import UnsafePath, contained, private_dir
from budget_monitor.pipeline import load_month
from budget_monitor.quarantine import quarantine, quarantine_unsafe
from budget_monitor.sources import fund_files, unsafe_entries
from budget_monitor.validate import ValidationContext, validate_table
from ingest_fixtures import PAY_HEADER, payment, write_csv

REPO = Path(__file__).resolve().parents[2]
JIANGMEN = REPO / "examples" / "jiangmen-2021"
GOOD_ROW = "X-0001,江门市市场监督管理局,江财工〔2021〕12号,100.00,2021-01-10\n"
HEADER = "支付凭证号,预算单位,指标文号,支付金额,支付日期\n"
# A legal Chinese file name of exactly 250 bytes of UTF-8 (NAME_MAX is 255).
LONG_NAME = "2021-01_" + ("江门市市场监督管理局食品药品安全抽检专项资金支出明细" * 4)[:79] + "a.csv"
CTX = dict(fund_year=2021, units=frozenset({"江门市市场监督管理局"}), doc_nos=frozenset({"江财工〔2021〕12号"}))


@pytest.fixture(autouse=True)
def _default_umask() -> Iterator[None]:
    """The permissions tests mean the usual umask 022 (world-readable by default)."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _fund(tmp_path: Path) -> Path:
    fund = tmp_path / "fund"
    shutil.copytree(JIANGMEN, fund)
    return fund


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def _rejected_report(path: Path, fund: Path):
    write_csv(path, PAY_HEADER, [payment("V1"), payment("V2", "壹仟元")])
    report = validate_table(read_table(path, "payments"), ValidationContext(**CTX, fund_dir=fund))
    assert not report.ok
    return report


def _vouchers(db_url: str, code: str) -> set[str]:
    engine = store.open_store(db_url)
    with engine.connect() as conn:
        return set(conn.execute(select(store.payment.c.voucher_no).where(store.payment.c.fund_code == code)).scalars())


# ------------------------------------------------------------------ 1. symlinks


def test_symlink_to_a_file_outside_the_fund_dir_is_not_loaded(db_url: str, tmp_path: Path) -> None:
    fund = _fund(tmp_path)
    outside = tmp_path / "elsewhere" / "secret.csv"
    outside.parent.mkdir()
    outside.write_text(HEADER + GOOD_ROW, encoding="utf-8")
    (fund / "payments" / "2021-01_补录.csv").symlink_to(outside)
    load_month(fund, "2021-01", db_url, raise_on_reject=False)
    vouchers = _vouchers(db_url, load_fund_config(fund).code)
    assert vouchers and "X-0001" not in vouchers  # the month loaded, the outside file did not
    assert outside.read_text(encoding="utf-8") == HEADER + GOOD_ROW  # never touched


def test_fund_files_lists_regular_files_only_and_names_every_other_entry(tmp_path: Path) -> None:
    fund = _fund(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "payments").mkdir(parents=True)
    (elsewhere / "payments" / "2021-02_外部.csv").write_text(HEADER + GOOD_ROW, encoding="utf-8")
    (elsewhere / "budget.csv").write_text("x", encoding="utf-8")
    # A file link leaving the fund dir, a link staying inside, a dangling link,
    # a linked kind folder, a linked budget, and a FIFO (would block a read).
    (fund / "payments" / "out.csv").symlink_to(elsewhere / "payments" / "2021-02_外部.csv")
    (fund / "payments" / "in.csv").symlink_to(fund / "payments" / "2021-01_支出明细.csv")
    (fund / "payments" / "gone.csv").symlink_to(tmp_path / "nowhere.csv")
    os.mkfifo(fund / "payments" / "pipe.csv")
    shutil.rmtree(fund / "outputs")
    (fund / "outputs").symlink_to(elsewhere / "payments", target_is_directory=True)
    (fund / "budget.csv").unlink()
    (fund / "budget.csv").symlink_to(elsewhere / "budget.csv")
    (fund / "payments" / "notes.txt").symlink_to(elsewhere / "budget.csv")  # not an input: ignored

    files = fund_files(fund)
    assert files["budget"] == []
    assert files["outputs"] == []
    assert [p.name for p in files["payments"]] == sorted(p.name for p in (JIANGMEN / "payments").iterdir())
    assert all(p.is_file() and not p.is_symlink() for ps in files.values() for p in ps)

    found = {(kind, p.relative_to(fund).as_posix()): reason for kind, p, reason in unsafe_entries(fund)}
    assert found == {
        ("budget", "budget.csv"): "budget.csv 是指向资金目录之外的符号链接，已拒绝读取",
        ("outputs", "outputs"): "outputs 是指向资金目录之外的符号链接，已拒绝读取该文件夹",
        ("payments", "payments/out.csv"): "payments/out.csv 是指向资金目录之外的符号链接，已拒绝读取",
        ("payments", "payments/in.csv"): "payments/in.csv 是符号链接，已拒绝读取（请放入文件本身，不要放链接）",
        ("payments", "payments/gone.csv"): "payments/gone.csv 是符号链接（目标不存在），已拒绝读取",
        ("payments", "payments/pipe.csv"): "payments/pipe.csv 不是普通文件（命名管道），已拒绝读取",
    }


def test_an_unsafe_entry_is_quarantined_as_the_link_itself(tmp_path: Path) -> None:
    fund = _fund(tmp_path)
    outside = tmp_path / "secret.csv"
    outside.write_text("机密", encoding="utf-8")
    (fund / "payments" / "x.csv").symlink_to(outside)
    ((kind, path, reason),) = unsafe_entries(fund)
    moved, report = quarantine_unsafe(kind, path, reason, fund / "quarantine", fund_dir=fund)
    assert moved.is_symlink() and os.readlink(moved) == str(outside)  # the link moved, not its target
    assert not os.path.lexists(path) and outside.read_text(encoding="utf-8") == "机密"
    assert unsafe_entries(fund) == [] and report.first_reason() == reason + "（规则 ING-006）"
    body = json.loads(Path(str(moved) + ".report.json").read_text(encoding="utf-8"))
    assert body["reason"] == reason + "（规则 ING-006）" and body["failures"][0]["rule_id"] == "ING-006"
    assert body["original_path"] == str(path) and body["file"] == "payments/x.csv"
    assert body["n_rows"] == 0 and len(body["sha256"]) == 64 and moved.name.endswith("_x.csv")
    # The digest is the entry's identity (nothing is read): another link gets
    # another one, so its rejection notice is not taken for this one's.
    (fund / "payments" / "y.csv").symlink_to(outside)
    ((kind, path, reason),) = unsafe_entries(fund)
    _, other = quarantine_unsafe(kind, path, reason, fund / "quarantine", fund_dir=fund)
    assert other.sha256 != report.sha256 == body["sha256"]


# ------------------------------------------------------------------ 2. fund codes


def _with_code(tmp_path: Path, code: object) -> Path:
    fund = _fund(tmp_path)
    data = yaml.safe_load((fund / "fund.yaml").read_text(encoding="utf-8"))
    data["code"] = code
    (fund / "fund.yaml").write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return fund


@pytest.mark.parametrize("code", ["..", ".", "...", ".hidden", "-rf", "a" * 65, "a/b", "资金", ""])
def test_unsafe_fund_code_is_rejected_in_chinese(tmp_path: Path, code: str) -> None:
    with pytest.raises(FundConfigError) as caught:
        load_fund_config(_with_code(tmp_path, code))
    msg = str(caught.value)
    assert "字段 code：资金代码" in msg and "\n" not in msg
    assert "只能由字母、数字、下划线、点和连字符组成，不能以点或连字符开头，最长 64 个字符" in msg


@pytest.mark.parametrize("code", ["a" * 64, "jiangmen-2021", "F_1.2", "_x", "2021"])
def test_safe_fund_codes_are_accepted(tmp_path: Path, code: str) -> None:
    assert load_fund_config(_with_code(tmp_path, code)).code == code


def test_archive_refuses_a_code_that_leaves_the_archive_root(tmp_path: Path) -> None:
    src = tmp_path / "支出.csv"
    src.write_text(HEADER + GOOD_ROW, encoding="utf-8")
    sha = store.sha256_of(src)
    root = tmp_path / "home" / "archive"
    for bad in ("..", "../..", "/etc", ""):
        with pytest.raises(UnsafePath, match="已拒绝"):
            store.archive_file(src, bad, sha, archive_root=root)
    assert not (tmp_path / "home" / sha[:2]).exists() and not (tmp_path / sha[:2]).exists()
    # A fund folder that is a symlink out of the root is refused too.
    (root).mkdir(parents=True)
    (root / "F1").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(UnsafePath):
        store.archive_file(src, "F1", sha, archive_root=root)
    assert not (tmp_path / sha[:2]).exists()


def test_contained_keeps_report_paths_under_their_root(tmp_path: Path) -> None:
    root = tmp_path / "reports"
    assert contained(root, "jiangmen-2021", "2021") == root / "jiangmen-2021" / "2021"
    for parts in ((".."), ("F", ".."), ("/abs",), ("a/b",), ("",), ("x\x00",)):
        with pytest.raises(UnsafePath):
            contained(root, *((parts,) if isinstance(parts, str) else parts))


# ------------------------------------------------------------------ 3. hostile names


def test_safe_name_escapes_controls_and_bidi_visibly() -> None:
    assert safe_name("2021-03_支出明细.csv") == "2021-03_支出明细.csv"
    assert safe_name("a\nb\tc\rd") == "a\\nb\\tc\\rd"
    assert safe_name("invoice\u202ecsv.exe") == "invoice\\u202ecsv.exe"
    hostile = "x\x00\x1b\x7f\x85\u200e\u200f\u2028\u2029\u202a\u202d\u2066\u2069\ufeff\u061c"
    out = safe_name(hostile)
    assert out == ("x\\x00\\x1b\\x7f\\x85\\u200e\\u200f\\u2028\\u2029\\u202a\\u202d\\u2066\\u2069\\ufeff\\u061c")
    assert out.isprintable()


def test_quarantined_name_with_newline_and_rlo_stays_one_visible_line(tmp_path: Path) -> None:
    path = tmp_path / "payments" / "2021-03\n支出\u202evsc.csv"
    report = _rejected_report(path, tmp_path)
    target = quarantine(path, report, tmp_path / "quarantine")
    assert target.name.isprintable() and target.name.endswith("_2021-03\\n支出\\u202evsc.csv")
    body = json.loads(Path(str(target) + ".report.json").read_text(encoding="utf-8"))
    assert body["original_path"] == str(path)  # the real name is kept, escaped by JSON
    assert body["quarantined_as"] == target.name


def test_unsafe_entry_reason_is_one_line_whatever_the_link_is_called(tmp_path: Path) -> None:
    fund = _fund(tmp_path)
    (fund / "payments" / "a\nb\u202e.csv").symlink_to(tmp_path)
    ((_, _, reason),) = unsafe_entries(fund)
    assert reason == "payments/a\\nb\\u202e.csv 是指向资金目录之外的符号链接，已拒绝读取"


# ------------------------------------------------------------------ 4. long names


def test_long_name_fixture_is_a_legal_250_byte_name() -> None:
    assert len(LONG_NAME.encode("utf-8")) == 250 and LONG_NAME.endswith("a.csv")


def test_fit_name_cuts_bytes_at_a_character_boundary_keeping_the_extension() -> None:
    assert fit_name("短.csv", 100) == "短.csv"
    cut = fit_name(LONG_NAME, 100)
    assert len(cut.encode("utf-8")) <= 100 and cut.endswith(".csv") and LONG_NAME.startswith(cut[:-4])
    assert len(fit_name("支" * 10, 7).encode()) == 6  # never half a character
    assert fit_name("a." + "x" * 300, 50) == "a." + "x" * 48  # an absurd "extension" is cut too


def test_quarantine_of_a_250_byte_chinese_name(tmp_path: Path) -> None:
    path = tmp_path / "payments" / LONG_NAME
    report = _rejected_report(path, tmp_path)
    qdir = tmp_path / "quarantine"
    targets = [quarantine(path, report, qdir)]
    _rejected_report(path, tmp_path)  # the same name again: the collision counter must fit too
    targets.append(quarantine(path, report, qdir))
    for target in targets:
        assert target.exists() and target.suffix == ".csv"
        body = json.loads(Path(str(target) + ".report.json").read_text(encoding="utf-8"))
        assert body["original_path"] == str(path) and body["quarantined_as"] == target.name
    names = [p.name for p in qdir.iterdir()]
    assert len(names) == 4 and all(len(n.encode("utf-8")) <= NAME_MAX for n in names)
    # room for the ".tmp" of the report written first
    assert all(len((n + ".tmp").encode("utf-8")) <= NAME_MAX for n in names if n.endswith(".report.json"))


def test_archive_of_a_250_byte_chinese_name(tmp_path: Path) -> None:
    src = tmp_path / LONG_NAME
    src.write_text(HEADER + GOOD_ROW, encoding="utf-8")
    sha = store.sha256_of(src)
    dest = store.archive_file(src, "F1", sha, archive_root=tmp_path / "archive")
    assert dest.read_bytes() == src.read_bytes()
    assert dest.name.startswith(f"{sha}__2021-01_江门") and dest.suffix == ".csv"
    assert len(dest.name.encode("utf-8")) <= NAME_MAX
    assert store.archive_file(src, "F1", sha, archive_root=tmp_path / "archive") == dest  # idempotent
    assert [p.name for p in dest.parent.iterdir()] == [dest.name]  # no temp file left


def test_long_named_files_load_or_are_quarantined_through_the_pipeline(db_url: str, tmp_path: Path) -> None:
    fund = _fund(tmp_path)
    (fund / "payments" / LONG_NAME).write_text(HEADER + GOOD_ROW, encoding="utf-8")
    bad_name = LONG_NAME.replace("2021-01_", "2021-01-").replace("a.csv", "b.csv")
    (fund / "payments" / bad_name).write_text(
        HEADER + GOOD_ROW.replace("X-0001", "X-0002").replace("100.00", "壹佰元"), encoding="utf-8"
    )
    result = load_month(fund, "2021-01", db_url, raise_on_reject=False)
    assert [f.status for f in result.files if f.name.endswith(".csv") and "江门市市场" in f.name] == [
        "rejected",
        "loaded",
    ]
    vouchers = _vouchers(db_url, load_fund_config(fund).code)
    assert "X-0001" in vouchers and "X-0002" not in vouchers
    (quarantined,) = [p for p in (fund / "quarantine").iterdir() if p.suffix == ".csv"]
    assert len(quarantined.name.encode("utf-8")) <= NAME_MAX


# ------------------------------------------------------------------ 5. permissions


def test_new_sqlite_store_is_owner_only(tmp_path: Path) -> None:
    db = tmp_path / "state" / "db" / "store.db"
    engine = store.open_store(f"sqlite:///{db}")
    store.upsert_fund(engine, "F1", "资金", 2021, "局")
    assert _mode(db.parent) == 0o700 and _mode(db.parent.parent) == 0o700
    created = [p for p in db.parent.iterdir()]
    assert {p.name for p in created} >= {"store.db", "store.db-wal", "store.db-shm"}
    assert {p.name: _mode(p) for p in created} == {p.name: 0o600 for p in created}


def test_archive_is_owner_only(tmp_path: Path) -> None:
    src = tmp_path / "支出.csv"
    src.write_text(HEADER, encoding="utf-8")
    sha = store.sha256_of(src)
    dest = store.archive_file(src, "F1", sha, archive_root=tmp_path / "home" / "archive")
    assert _mode(dest) == 0o600
    for d in (dest.parent, dest.parent.parent, tmp_path / "home" / "archive", tmp_path / "home"):
        assert _mode(d) == 0o700, d


def test_quarantine_is_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "payments" / "2021-03_支出.csv"
    report = _rejected_report(path, tmp_path)
    target = quarantine(path, report, tmp_path / "quarantine")
    assert _mode(target.parent) == 0o700
    assert _mode(target) == 0o600 and _mode(Path(str(target) + ".report.json")) == 0o600


def test_shared_group_setting_opens_to_the_group_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUDGET_MONITOR_SHARED_GROUP", "1")
    os.umask(0o077)  # explicit setting wins over a strict umask too
    path = tmp_path / "payments" / "2021-03_支出.csv"
    target = quarantine(path, _rejected_report(path, tmp_path), tmp_path / "quarantine")
    assert (_mode(target.parent), _mode(target), _mode(Path(str(target) + ".report.json"))) == (0o750, 0o640, 0o640)
    src = tmp_path / "a.csv"
    src.write_text(HEADER, encoding="utf-8")
    dest = store.archive_file(src, "F1", store.sha256_of(src), archive_root=tmp_path / "archive")
    assert (_mode(dest.parent), _mode(dest)) == (0o750, 0o640)
    db = tmp_path / "db" / "store.db"
    store.upsert_fund(store.open_store(f"sqlite:///{db}"), "F1", "资金", 2021, "局")
    assert (_mode(db.parent), _mode(db)) == (0o750, 0o640)


def test_existing_directories_keep_their_mode(tmp_path: Path) -> None:
    mine = tmp_path / "chosen"
    mine.mkdir(mode=0o755)
    os.chmod(mine, 0o755)
    private_dir(mine / "new" / "deeper")
    assert _mode(mine) == 0o755 and _mode(mine / "new") == 0o700 and _mode(mine / "new" / "deeper") == 0o700
