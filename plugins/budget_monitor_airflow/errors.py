"""Task failures that carry what the finance office must be told."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from airflow.sdk.exceptions import AirflowFailException


@dataclass
class FundRejection:
    """The rejected files of one fund-month (they are in quarantine already)."""

    fund_code: str
    fund_name: str
    month: str
    recipients: list[str]
    quarantine_dir: str
    files: list[dict[str, str]] = field(default_factory=list)  # {"name", "reason"}


class FilesRejected(AirflowFailException):
    """Input files were rejected: fail now, without retries.

    A retry would not see the file (it is in quarantine) and would pass,
    hiding the rejection; the fix is a corrected file from the finance office.
    """

    def __init__(self, rejections: list[FundRejection]) -> None:
        self.rejections = rejections
        reasons = [f"{r.fund_code} {f['name']}：{f['reason']}" for r in rejections for f in r.files]
        super().__init__("输入文件被退回：" + "；".join(reasons))

    def as_dicts(self) -> list[dict]:
        return [asdict(r) for r in self.rejections]
