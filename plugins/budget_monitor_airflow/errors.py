"""Task failures that carry what the finance office (or ops) must be told."""

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


@dataclass
class FundFailure:
    """A technical failure of one fund of a batch (store down, bug...): for ops."""

    fund: str  # fund code, or the directory name when fund.yaml was not read
    error: str  # "ExceptionType: message"


def _failure_text(failures: list[FundFailure]) -> str:
    return "; ".join(f"{f.fund}: {f.error}" for f in failures)


class FundsFailed(Exception):
    """Some funds of a batch failed for technical reasons; the others were loaded.

    An ordinary exception on purpose: Airflow retries the task (the funds
    already loaded skip their files by content hash), and the failure
    notifier tells ops once the retries are used up.
    """

    def __init__(self, failures: list[FundFailure]) -> None:
        self.failures = failures
        super().__init__(f"{len(failures)} fund(s) failed: {_failure_text(failures)}")


class FilesRejected(AirflowFailException):
    """Input files were rejected: fail now, without retries.

    A retry would not see the file (it is in quarantine) and would pass,
    hiding the rejection (and, for December, publishing the year end); the
    fix is a corrected file from the finance office. Technical failures of
    other funds of the same batch ride along in ``failures``: they are not
    retried automatically then (ops clears the task once the cause is fixed).
    """

    def __init__(self, rejections: list[FundRejection], failures: list[FundFailure] | None = None) -> None:
        self.rejections = rejections
        self.failures = list(failures or [])
        reasons = [f"{r.fund_code} {f['name']}：{f['reason']}" for r in rejections for f in r.files]
        text = "输入文件被退回：" + "；".join(reasons)
        if self.failures:
            text += f" | {len(self.failures)} fund(s) also failed: {_failure_text(self.failures)}"
        super().__init__(text)

    def as_dicts(self) -> list[dict]:
        return [asdict(r) for r in self.rejections]
