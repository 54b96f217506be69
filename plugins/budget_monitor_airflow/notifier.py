"""Failure notifier: tells the finance office, in Chinese, why their file was rejected."""

from __future__ import annotations

import html
import logging

from airflow.sdk import BaseNotifier

from budget_monitor_airflow import settings
from budget_monitor_airflow.mail import send_html

log = logging.getLogger(__name__)


def rejection_mail(rej) -> tuple[str, str]:  # rej: FundRejection
    """Subject and HTML body of the rejection notice of one fund-month."""
    rows = "".join(
        f"<tr><td>{html.escape(f['name'])}</td><td>{html.escape(f['reason'])}</td></tr>"
        for f in rej.files
    )
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
    """on_failure_callback of the budget DAGs.

    A task that failed with ``FilesRejected`` mails each fund's recipients
    (fund.yaml ``recipients``) the reasons. Any other failure is technical:
    it goes to ``BUDGET_MONITOR_OPS_EMAIL`` when set, else only to the log.
    """

    def __init__(self, smtp_conn_id: str = settings.SMTP_CONN_ID) -> None:
        super().__init__()
        self.smtp_conn_id = smtp_conn_id

    def notify(self, context) -> None:
        exc = context.get("exception")
        rejections = getattr(exc, "rejections", None)
        if rejections:
            for rej in rejections:
                subject, body = rejection_mail(rej)
                to = rej.recipients or ([settings.ops_email()] if settings.ops_email() else [])
                if not to:
                    log.warning("no recipients for %s; rejection not mailed", rej.fund_code)
                    continue
                send_html(to, subject, body, conn_id=self.smtp_conn_id)
                log.info("rejection notice for %s sent to %s", rej.fund_code, ", ".join(to))
            return
        ops = settings.ops_email()
        ti = context.get("ti") or context.get("task_instance")
        where = f"{getattr(ti, 'dag_id', '?')}.{getattr(ti, 'task_id', '?')}"
        if not ops:
            log.info("task %s failed (%s); BUDGET_MONITOR_OPS_EMAIL unset, no mail", where, exc)
            return
        send_html([ops], f"【预算执行监控】任务失败：{where}",
                  f"<p>任务 {html.escape(where)} 运行失败：</p><pre>{html.escape(str(exc))}</pre>",
                  conn_id=self.smtp_conn_id)
