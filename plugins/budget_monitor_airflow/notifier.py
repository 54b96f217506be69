"""Failure notifier: technical failures to ops; rejections are mailed through the outbox."""

from __future__ import annotations

import html
import logging

from airflow.sdk import BaseNotifier

from budget_monitor_airflow import settings
from budget_monitor_airflow.mail import send_html

log = logging.getLogger(__name__)


def rejection_mail(rej) -> tuple[str, str]:  # rej: FundRejection
    """Subject and HTML body of a fund-month's rejections, for ops when the fund has no
    recipients (the finance office's own notice comes from the outbox)."""
    rows = "".join(f"<tr><td>{html.escape(f['name'])}</td><td>{html.escape(f['reason'])}</td></tr>" for f in rej.files)
    subject = f"【预算执行监控】{rej.fund_name} {rej.month} 数据文件被退回"
    body = (
        f"<p>您好：</p><p>{html.escape(rej.fund_name)}（{html.escape(rej.fund_code)}）"
        f"{html.escape(rej.month)} 月度监控中，以下文件未通过数据校验，已整体退回，"
        "其中的数据均未入库（此前已入库的数据不受影响）：</p>"
        f"<table border='1' cellpadding='4'><tr><th>文件</th><th>退回原因</th></tr>{rows}</table>"
        f"<p>文件及校验报告已移至隔离目录：{html.escape(rej.quarantine_dir)}</p>"
        "<p>请更正后将文件重新放入收件目录，下次运行时将自动处理。</p>"
        "<p>（本邮件由预算执行监控系统自动发送）</p>"
    )
    return subject, body


class RejectionNotifier(BaseNotifier):
    """on_failure_callback of the budget DAGs (runs once the task's retries are used up).

    - Rejected files (``FilesRejected``) of a fund with ``recipients``: no mail
      here. ``pipeline.load_month`` queued the Chinese rejection notice in the
      outbox when it quarantined the file; ``send_alerts`` (trigger rule
      all_done) sends it in the same run, retries it while SMTP is down and
      never sends it twice. Mailing it here too would duplicate it.
    - A rejection without recipients (fund.yaml unreadable: nobody to tell in
      the finance office) goes to ``BUDGET_MONITOR_OPS_EMAIL``.
    - Any other failure is technical (including the funds of a batch that
      failed beside a rejection, ``exc.failures``): it goes to
      ``BUDGET_MONITOR_OPS_EMAIL`` when set, else only to the log.
    """

    def __init__(self, smtp_conn_id: str = settings.SMTP_CONN_ID) -> None:
        super().__init__()
        self.smtp_conn_id = smtp_conn_id

    def notify(self, context) -> None:
        exc = context.get("exception")
        rejections = getattr(exc, "rejections", None) or []
        ops = settings.ops_email()
        for rej in rejections:
            if rej.recipients:
                log.info(
                    "rejection notice for %s is in the outbox (sent by send_alerts to %s)",
                    rej.fund_code,
                    ", ".join(rej.recipients),
                )
            elif ops:
                subject, body = rejection_mail(rej)
                send_html([ops], subject, body, conn_id=self.smtp_conn_id)
                log.info("rejection of %s (no recipients) sent to ops %s", rej.fund_code, ops)
            else:
                log.warning(
                    "no recipients for %s and BUDGET_MONITOR_OPS_EMAIL unset; rejection not mailed", rej.fund_code
                )
        if rejections and not getattr(exc, "failures", None):
            return
        ti = context.get("ti") or context.get("task_instance")
        where = f"{getattr(ti, 'dag_id', '?')}.{getattr(ti, 'task_id', '?')}"
        if not ops:
            log.info("task %s failed (%s); BUDGET_MONITOR_OPS_EMAIL unset, no mail", where, exc)
            return
        send_html(
            [ops],
            f"【预算执行监控】任务失败：{where}",
            f"<p>任务 {html.escape(where)} 运行失败：</p><pre>{html.escape(str(exc))}</pre>",
            conn_id=self.smtp_conn_id,
        )
