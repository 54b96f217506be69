"""``[core] hostname_callable`` of the test stack's Celery workers.

All workers of the native stack run on one machine and would all report its
fully qualified name; each is started with its Celery node name in
``BM_CELERY_WORKER_NAME`` so that a task instance's ``hostname`` says which
worker ran it.
"""

from __future__ import annotations

import os
import socket


def hostname() -> str:
    return os.environ.get("BM_CELERY_WORKER_NAME") or socket.getfqdn()
