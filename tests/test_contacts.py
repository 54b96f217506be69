"""The department's contacts file (contacts.csv at the inbox root) and who gets what:
a unit's alert To its contact, Cc the finance office; a fund-level alert to the
finance office; a unit without a contact falls back to the finance office."""

from __future__ import annotations

from pathlib import Path

import pytest

from budget_monitor import contacts
from budget_monitor.alerts import MONTH_WARNING, QUARTER_LAGGING, build_alerts, route
from budget_monitor.contacts import Contacts, ContactsError

from seed_shaped import CFG, seed_shaped

REPO = Path(__file__).resolve().parents[1]
TAISHAN, KAIPING, ENPING = "台山市市场监督管理局", "开平市市场监督管理局", "恩平市市场监督管理局"


def _write(root: Path, text: str, encoding: str = "utf-8") -> Path:
    path = root / contacts.CONTACTS_FILE
    path.write_bytes(text.encode(encoding))
    return root


def test_example_contacts_give_taishan_and_kaiping_a_contact_and_leave_enping_without() -> None:
    people = contacts.load(REPO / "examples")
    assert people.emails(TAISHAN) == ("liming@scjgj.taishan.example.cn",)
    assert people.accounts(TAISHAN) == ["taishan"] and people.accounts(KAIPING) == ["kaiping"]
    assert not people.has(ENPING) and people.accounts(ENPING) == []
    assert contacts.accounts(REPO / "examples", TAISHAN) == ["taishan"]


def test_no_contacts_file_means_every_unit_falls_back(tmp_path: Path) -> None:
    people = contacts.load(tmp_path)
    assert people == Contacts() and people.emails(TAISHAN) == ()
    assert contacts.accounts(tmp_path, TAISHAN) == []


def test_contacts_read_english_headers_gbk_several_contacts_per_unit_and_blank_lines(tmp_path: Path) -> None:
    text = f"unit,email,name,account\n{TAISHAN},a@taishan.example.cn,甲,taishan\n\n{TAISHAN},b@taishan.example.cn,乙,\n"
    people = contacts.load(_write(tmp_path, text, "gb18030"))
    assert people.emails(TAISHAN) == ("a@taishan.example.cn", "b@taishan.example.cn")
    assert people.accounts(TAISHAN) == ["taishan"]


def test_a_changed_contacts_file_is_read_again(tmp_path: Path) -> None:
    _write(tmp_path, f"预算单位,电子邮箱\n{TAISHAN},a@taishan.example.cn\n")
    assert contacts.load(tmp_path).emails(TAISHAN) == ("a@taishan.example.cn",)
    _write(tmp_path, f"预算单位,电子邮箱\n{TAISHAN},new-address@taishan.example.cn\n")
    assert contacts.load(tmp_path).emails(TAISHAN) == ("new-address@taishan.example.cn",)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("联系人,电子邮箱\n李明,a@b.cn\n", "第1行（表头）缺少列“预算单位”"),
        (
            f"预算单位,电子邮箱\n{TAISHAN},liming(at)taishan\n",
            "第2行 列“电子邮箱”：“liming(at)taishan”不是有效的电子邮件地址",
        ),
        (f"预算单位,电子邮箱\n{TAISHAN},a@b.cn\n,c@d.cn\n", "第3行 列“预算单位”：不能为空"),
        (f"预算单位,电子邮箱\n{TAISHAN},\n", "第2行 列“电子邮箱”：空白不是有效的电子邮件地址"),
        (
            f"预算单位,电子邮箱\n{TAISHAN},a@b.cn\n{TAISHAN},A@b.cn\n",
            "第3行：台山市市场监督管理局 的邮箱 A@b.cn 与第2行重复",
        ),
        (f"预算单位,电子邮箱,账号\n{TAISHAN},a@b.cn,li ming\n", "第2行 列“账号”：“li ming”无效"),
        ("", "文件为空"),
    ],
)
def test_a_bad_contacts_file_is_refused_whole_with_row_and_column(tmp_path: Path, text: str, reason: str) -> None:
    _write(tmp_path, text)
    with pytest.raises(ContactsError) as err:
        contacts.load(tmp_path)
    assert reason in str(err.value) and "contacts.csv" in str(err.value)


def test_a_symlinked_contacts_file_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "elsewhere.csv"
    real.write_text(f"预算单位,电子邮箱\n{TAISHAN},a@b.cn\n", encoding="utf-8")
    (tmp_path / contacts.CONTACTS_FILE).symlink_to(real)
    with pytest.raises(ContactsError, match="符号链接"):
        contacts.load(tmp_path)


# ----------------------------------------------------------------- who gets what


def _people(tmp_path: Path) -> Contacts:
    return contacts.load(_write(tmp_path, f"预算单位,联系人,电子邮箱\n{TAISHAN},李明,liming@taishan.example.cn\n"))


def test_route_unit_to_its_contact_cc_the_finance_office_fund_level_to_the_office(tmp_path: Path) -> None:
    people = _people(tmp_path)
    unit = route(CFG, TAISHAN, people)
    assert (unit.to, unit.cc, unit.fallback) == (("liming@taishan.example.cn",), tuple(CFG.recipients), False)
    fund = route(CFG, "", people)
    assert (fund.to, fund.cc, fund.fallback) == (tuple(CFG.recipients), (), False)
    orphan = route(CFG, ENPING, people)
    assert (orphan.to, orphan.cc, orphan.fallback) == (tuple(CFG.recipients), (), True)


def test_unit_alert_goes_to_the_unit_copied_to_the_finance_office(tmp_path: Path) -> None:
    alerts = build_alerts(CFG, seed_shaped(6), 6, contacts=_people(tmp_path))
    by_unit = {a.unit: a for a in alerts if a.kind == MONTH_WARNING}
    taishan = by_unit[TAISHAN]
    assert taishan.message["To"] == "liming@taishan.example.cn"
    assert taishan.message["Cc"] == ", ".join(CFG.recipients)
    assert taishan.recipients == ("liming@taishan.example.cn", *CFG.recipients)
    assert taishan.text.startswith(f"{TAISHAN}：") and "尚未登记联系人" not in taishan.text
    # The fund's own warning and the quarter alert: the finance office only.
    for a in [by_unit[""], *(a for a in alerts if a.kind == QUARTER_LAGGING)]:
        assert a.message["To"] == ", ".join(CFG.recipients) and a.message["Cc"] is None
        assert a.text.startswith(f"{CFG.department}：")


def test_unit_without_a_contact_falls_back_to_the_finance_office_and_says_so(tmp_path: Path) -> None:
    alerts = build_alerts(CFG, seed_shaped(6), 6, contacts=_people(tmp_path))
    others = [a for a in alerts if a.kind == MONTH_WARNING and a.unit not in ("", TAISHAN)]
    assert others
    for a in others:
        assert a.message["To"] == ", ".join(CFG.recipients) and a.message["Cc"] is None
        assert f"{a.unit}尚未登记联系人" in a.text and f"{a.unit}尚未登记联系人" in a.html


@pytest.mark.parametrize(
    "address",
    [
        "a@x.cn\nBcc: evil@x.cn",
        "a@x.cn\r\nBcc: evil@x.cn",
        "a@x.cn\rBcc: evil@x.cn",
        "<script>alert(1)</script>@x.cn",
        '"><img src=x onerror=1>@x.cn',
        'a"@x.cn',  # a quote joins the next To address into one quoted word
        "=HYPERLINK(a)@x.cn",
        "a\x00b@x.cn",
        "a\u202eb@x.cn",  # reads backwards on the dashboard
        "a@x.cn\u2028Bcc: evil@x.cn",
    ],
)
def test_a_hostile_email_is_refused_and_the_message_stays_one_line(tmp_path: Path, address: str) -> None:
    quoted = '"' + address.replace('"', '""') + '"'
    _write(tmp_path, f"预算单位,电子邮箱\n{TAISHAN},{quoted}\n")
    with pytest.raises(ContactsError) as err:
        contacts.load(tmp_path)
    message = str(err.value)
    assert "第2行 列“电子邮箱”" in message and "不是有效的电子邮件地址" in message
    assert not any(ch in message for ch in "\r\n\x00\u202e\u2028")


def test_hostile_unit_and_contact_names_are_kept_as_written_for_the_pages_to_escape(tmp_path: Path) -> None:
    unit, name = "<script>alert(1)</script>局", '"><img src=x onerror=1>'
    people = contacts.load(
        _write(tmp_path, f'预算单位,联系人,电子邮箱\n{unit},"{name.replace(chr(34), 2 * chr(34))}",a@b.cn\n')
    )
    (c,) = people.of(unit)
    assert (c.unit, c.name, c.email) == (unit, name, "a@b.cn")
