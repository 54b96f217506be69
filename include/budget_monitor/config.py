"""fund.yaml: the metadata and settings of one fund-year.

The schema is a pydantic model so that a bad fund.yaml fails with a message
naming the field and the rule (shown in Chinese to the finance office by
``FundConfigError``). Every default below is the default of
``shared/spec/rules.md``; a fund overrides what it needs.
"""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal, Union, get_args
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from . import alert_kinds
from .kinds import FACT_KINDS
from .names import safe_name
from .pace import DEFAULT_POLICY, POLICIES

_MMDD = re.compile(r"^(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$")
_CODE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")


class FundConfigError(ValueError):
    """fund.yaml is missing or invalid; the message is for the finance office."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PaceConfig(_Strict):
    """How the time pace (序时进度) is computed and when a gap is a warning."""

    # A name of pace.POLICIES, the table of policies: checked against it when
    # validated and listed from it in the JSON schema, so a new row needs nothing here.
    policy: str = Field(DEFAULT_POLICY, json_schema_extra=lambda schema: schema.update(enum=list(POLICIES)))
    # "MM-DD" -> percent; required (and only used) by the milestones policy.
    milestones: dict[str, Decimal] = Field(default_factory=dict)
    # A quarter lags when gap_points < -tolerance.
    tolerance: Decimal = Decimal("0")
    # A monthly warning is red when behind by this many points or more.
    red_gap: Decimal = Decimal("20")

    @field_validator("policy")
    @classmethod
    def _known_policy(cls, v: str) -> str:
        if v not in POLICIES:
            raise ValueError(f"取值无效（应为 {'、'.join(POLICIES)} 之一，而不是 {v!r}）")
        return v

    @field_validator("milestones")
    @classmethod
    def _check_milestones(cls, v: dict[str, Decimal]) -> dict[str, Decimal]:
        for key, pct in v.items():
            if not _MMDD.match(key):
                raise ValueError(f"里程碑日期 {key!r} 应为 MM-DD 格式")
            if not (Decimal(0) <= pct <= Decimal(100)):
                raise ValueError(f"里程碑 {key} 的进度 {pct} 应在 0 到 100 之间")
        pcts = [v[k] for k in sorted(v)]
        if any(b < a for a, b in zip(pcts, pcts[1:])):
            raise ValueError("里程碑进度应随日期递增")
        return v

    @model_validator(mode="after")
    def _policy_needs(self) -> PaceConfig:
        for field in POLICIES[self.policy].needs:
            if not getattr(self, field):
                raise ValueError(f"policy 为 {self.policy} 时必须给出 {field} 表")
        if self.tolerance < 0:
            raise ValueError("tolerance 不能为负数")
        return self


class GradeBand(_Strict):
    grade: str
    min_score: Decimal


def _default_grades() -> list[GradeBand]:
    return [
        GradeBand(grade="优", min_score=Decimal(90)),
        GradeBand(grade="良", min_score=Decimal(80)),
        GradeBand(grade="中", min_score=Decimal(60)),
        GradeBand(grade="差", min_score=Decimal(0)),
    ]


class ScoringConfig(_Strict):
    execution_weight: Decimal = Decimal("10")
    grades: list[GradeBand] = Field(default_factory=_default_grades)
    # 完成程度 -> share of the weight, for qualitative indicators.
    qualitative_levels: dict[str, Decimal] = Field(
        default_factory=lambda: {
            "达成": Decimal("1.0"),
            "基本达成": Decimal("0.8"),
            "部分达成": Decimal("0.6"),
            "未达成": Decimal("0"),
        }
    )


class Measure(_Strict):
    """How one indicator's actual value is measured from the stored data.

    - ``source: inspections`` with ``agg: count`` counts inspection records,
      filtered by ``where`` (e.g. ``{category: 药品}``); ``agg: ratio`` divides
      the count filtered by ``where`` by the count filtered by ``denominator_where``
      (as a percent), e.g. the 合格率.
    - ``source: outputs`` reads the outputs rows of ``indicator`` (default: the
      goal's own name) with ``agg`` sum / latest / max / mean, optionally only
      for ``unit``.
    - ``source: execution`` is the fund's execution rate (percent).
    - ``source: qualitative`` reads the latest outputs 完成程度 text.
    """

    source: Literal["inspections", "outputs", "execution", "qualitative"] = "outputs"
    agg: Literal["count", "ratio", "sum", "latest", "max", "mean"] = "latest"
    where: dict[str, str] = Field(default_factory=dict)
    denominator_where: dict[str, str] = Field(default_factory=dict)
    indicator: str | None = None
    unit: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Measure:
        if self.source == "inspections" and self.agg not in ("count", "ratio"):
            raise ValueError("inspections 只支持 agg: count 或 ratio")
        if self.source == "outputs" and self.agg in ("count", "ratio"):
            raise ValueError("outputs 只支持 agg: sum / latest / max / mean")
        return self


class SmtpConfig(_Strict):
    """Plain SMTP settings for the CLI (the DAGs use the smtp_default connection).

    The password is never written here: it is read from the environment
    variable named by ``password_env``.
    """

    host: str = "127.0.0.1"
    port: int = 25
    starttls: bool = False
    user: str | None = None
    password_env: str = "BUDGET_MONITOR_SMTP_PASSWORD"
    sender: str = "budget-monitor@localhost"
    # TLS from the first byte (SMTPS, usually port 465) instead of STARTTLS.
    use_ssl: bool = False
    # Send the password over an unencrypted connection anyway (a relay on the
    # same host); refused by default (outbox.refuse_plain_auth).
    allow_plain_auth: bool = False


class AlertsConfig(_Strict):
    """How the month close's alerts are mailed (alert_kinds.py, alerts.py).

    ``digest`` (default): one mail per recipient per month close gathering
    everything due for them (every fund and unit); ``each``: one mail per
    (fund, unit, period, kind). ``immediate``: kinds (or ``kind:severity``)
    that go at once even in digest mode, e.g. ``[month_warning:red, quarter_lagging]``.
    """

    mode: Literal["digest", "each"] = "digest"
    # Choices from the table of alert kinds (alert_kinds.KINDS), read when checked.
    immediate: list[str] = Field(
        default_factory=list,
        json_schema_extra=lambda schema: schema["items"].update(enum=alert_kinds.immediate_choices()),
    )

    @field_validator("immediate")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        choices = alert_kinds.immediate_choices()
        for choice in v:
            if choice not in choices:
                raise ValueError(f"预警类型 {choice!r} 无效（应为 {'、'.join(choices)} 之一）")
        return v

    def at_once(self, kind: str, severity: str | None) -> bool:
        """Whether an alert of ``kind`` (and ``severity``) is mailed on its own, now."""
        if self.mode == "each" or not alert_kinds.KINDS[kind].digest:
            return True
        return kind in self.immediate or (severity is not None and f"{kind}:{severity}" in self.immediate)


# ---------------------------------------------------------------- 自评表 (report helper, issue 15)
# The official form's fields that the data files do not carry. All optional:
# an older fund.yaml reads as before.

FundSource = Literal["当年财政拨款", "上年结转资金", "其他资金"]


class SelfEvaluationConfig(_Strict):
    """Header, footer and funding-source rows of the 项目支出绩效自评表 (财预〔2020〕10号 附件)."""

    # 实施单位; empty: the budget units of the budget file, else the department.
    implementing_unit: str = ""
    # 年度总体目标 / 预期目标; empty: goal_paragraphs.
    overall_goal: list[str] = Field(default_factory=list)
    # 项目负责人 and 财务负责人 as they sign the form (blank lines to sign when empty).
    project_lead: str = ""
    finance_lead: str = ""
    # 指标文号 (budget file doc_no) -> funding source; a document not listed is 当年财政拨款.
    # Tags allocations by source without a new budget-file column.
    fund_sources: dict[str, FundSource] = Field(default_factory=dict)


# ---------------------------------------------------------------- source (intake wing, issue 16)
# Where a fund's month comes from: fund.yaml ``source``, one settings class per kind.


class FilesSourceSettings(_Strict):
    """The finance office drops the files into the fund directory."""

    kind: Literal["files"]


def _fact_kinds(v: dict[str, str] | list[str]) -> dict[str, str] | list[str]:
    bad = [k for k in v if k not in FACT_KINDS]
    if bad:
        raise ValueError(f"数据种类 {bad[0]!r} 无效（应为 {'、'.join(FACT_KINDS)} 之一）")
    return v


class SqlSourceSettings(_Strict):
    """A database with one table per kind (intake/sql.py). Its URL, password
    included, is never written here: it comes from the Airflow connection
    ``conn_id`` or the environment variable ``url_env``."""

    kind: Literal["sql"]
    conn_id: str = "budget_monitor_source"
    url_env: str = "BUDGET_MONITOR_SOURCE_URL"
    # kind -> table name, where it is not the kind's name.
    tables: dict[str, str] = Field(default_factory=dict)
    # kind -> the column placing a row in a month, where it is not the contract's.
    date_columns: dict[str, str] = Field(default_factory=dict)

    _kinds = field_validator("tables", "date_columns")(_fact_kinds)


class HttpSourceSettings(_Strict):
    """The treasury payment system's HTTP/JSON export (intake/treasury.py,
    docs/treasury-export.md). The token comes from the Airflow connection
    ``conn_id`` (its password; its host is the URL when ``url`` is not given)
    or the environment variable ``token_env``, never from here."""

    kind: Literal["http"]
    url: str | None = None
    conn_id: str = "budget_monitor_treasury"
    token_env: str = "BUDGET_MONITOR_TREASURY_TOKEN"
    kinds: list[str] = Field(default_factory=lambda: ["payments"], min_length=1)
    page_size: Annotated[int, Field(ge=1, le=10_000)] = 500
    timeout_s: Annotated[float, Field(gt=0, le=600)] = 30.0

    _kinds = field_validator("kinds")(_fact_kinds)

    @field_validator("url")
    @classmethod
    def _no_secret_in_url(cls, v: str | None) -> str | None:
        if v is None:
            return v
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"接口地址 {safe_name(v)!r} 应以 http:// 或 https:// 开头")
        if parts.username or parts.password:
            raise ValueError("接口地址中不能包含用户名或密码：令牌请通过 Airflow 连接或环境变量提供")
        return v


# The settings of each source kind, by fund.yaml ``source.kind`` (its Literal);
# intake/registry.py has the matching row that builds the source.
SOURCE_SETTINGS = (FilesSourceSettings, SqlSourceSettings, HttpSourceSettings)
SOURCE_KINDS: tuple[str, ...] = tuple(get_args(m.model_fields["kind"].annotation)[0] for m in SOURCE_SETTINGS)
SourceSettings = Annotated[Union[SOURCE_SETTINGS], Field(discriminator="kind")]


class FundConfig(_Strict):
    # A path component under the archive, report and lock roots, and the
    # store's String(64) key: checked by _safe_code (a Chinese reason).
    code: str
    name: str
    short_name: str | None = None
    year: Annotated[int, Field(ge=2000, le=2100)]
    department: str
    # Administrative region, prefixed to the fund name in the report's first
    # sentence as the seed writes it ("江门市2021年…专项资金为372.09万元").
    region: str = ""
    # Sentence fragment: "该补助资金重点用于支持{uses}。"
    uses: str = ""
    # 一（二）专项资金绩效目标: the numbered goal paragraphs, in order.
    goal_paragraphs: list[str] = Field(default_factory=list)
    # 二（二）绩效目标完成情况: one jinja2 template per goal, rendered with
    # ``actual`` (indicator name -> measured value text) and ``fund``.
    achievement_templates: list[str] = Field(default_factory=list)
    # Known causes of lagging quarters, as the finance office wrote them
    # (quarter -> "部分项目启动较晚"); used in 存在问题 only when that quarter lags.
    lag_causes: dict[int, str] = Field(default_factory=dict)
    # The document the self-evaluation is made under (自评分数 basis).
    basis_document: str = ""
    recipients: list[str] = Field(default_factory=list)
    # Digest or one mail per alert; kinds that go at once (AlertsConfig).
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    inspection_categories: list[str] = Field(default_factory=lambda: ["药品", "药包材", "化妆品", "医疗器械", "食品"])
    pace: PaceConfig = Field(default_factory=PaceConfig)
    scoring: ScoringConfig = Field(default_factory=ScoringConfig)
    # indicator name (三级指标) -> how its actual is measured. An indicator
    # not listed here defaults to the latest outputs value of the same name.
    measures: dict[str, Measure] = Field(default_factory=dict)
    smtp: SmtpConfig = Field(default_factory=SmtpConfig)
    # 自评表 fields (SelfEvaluationConfig); report helper, issue 15.
    self_evaluation: SelfEvaluationConfig = Field(default_factory=lambda: SelfEvaluationConfig())
    # Where the month's data comes from (intake/registry.py). None: the
    # deployment's default, the file drop (the DAG pulls from the SQL source
    # instead when the Airflow connection ``budget_monitor_source`` exists).
    source: SourceSettings | None = None

    @property
    def title(self) -> str:
        return self.short_name or self.name

    @field_validator("code")
    @classmethod
    def _safe_code(cls, v: str) -> str:
        # Letters, digits, "_", "." and "-" only; never "." or "-" first, so
        # no ".", "..", hidden name or option-like "-rf"; at most 64 characters.
        if not _CODE.fullmatch(v):
            raise ValueError(
                f"资金代码“{safe_name(v)}”无效：只能由字母、数字、下划线、点和连字符组成，"
                "不能以点或连字符开头，最长 64 个字符"
            )
        return v

    @field_validator("recipients")
    @classmethod
    def _emails(cls, v: list[str]) -> list[str]:
        for addr in v:
            if not re.fullmatch(r"[^@\s]+@[^@\s]+", addr):  # fullmatch: "$" lets a trailing \n through
                raise ValueError(f"收件人 {addr!r} 不是有效的电子邮件地址")
        return v


# libyaml's safe loader: 9x faster than the pure-Python one (8.6 -> 0.9 ms a
# fund.yaml), and a monthly close reads every fund's config three times.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_fund_config(fund_dir: str | Path) -> FundConfig:
    """Read ``<fund_dir>/fund.yaml``; raise FundConfigError with a Chinese reason."""
    path = Path(fund_dir) / "fund.yaml"
    if path.is_symlink():
        # Like the data files (sources.fund_files): a link could make a YAML
        # error message quote a file from outside the fund directory.
        raise FundConfigError(f"{path}: fund.yaml 是符号链接，已拒绝读取（请放入文件本身）")
    if not path.is_file():
        raise FundConfigError(f"{path}: 找不到 fund.yaml")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_YAML_LOADER)
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise FundConfigError(f"{path}: 无法解析 YAML：{exc}") from exc
    if not isinstance(data, dict):
        raise FundConfigError(f"{path}: 内容应为键值映射")
    try:
        cfg = FundConfig.model_validate(data)
    except ValidationError as exc:
        parts = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "(根)"
            parts.append(f"字段 {loc}：{_zh_error(err)}")
        raise FundConfigError(f"{path}: fund.yaml 配置错误：" + "；".join(parts)) from exc
    if not cfg.recipients:
        # Alerts and rejections must reach someone; an empty list would fail every send.
        raise FundConfigError(f"{path}: fund.yaml 配置错误：字段 recipients：至少需要一个收件人")
    return cfg


def _zh_error(err: dict) -> str:
    kind = err.get("type", "")
    if kind == "missing":
        return "缺少必填项"
    if kind == "extra_forbidden":
        return "未知字段"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        return f"来源类型 kind 应为 {'、'.join(SOURCE_KINDS)} 之一"
    if kind.startswith("literal_error"):
        return f"取值无效（{err.get('msg')}）"
    if kind == "value_error" and err.get("ctx", {}).get("error") is not None:
        # Our validators' own Chinese text, without pydantic's "Value error, ".
        return str(err["ctx"]["error"])
    return str(err.get("msg", kind))
