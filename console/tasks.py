from __future__ import annotations

import socket

from celery import shared_task
from django.utils import timezone

from .models import ServiceHeartbeat


@shared_task(ignore_result=True)
def heartbeat(name: str = "worker") -> None:
    """Beat schedules it, a worker runs it: the row's time proves both are alive."""
    ServiceHeartbeat.objects.update_or_create(
        name=name, defaults={"last_seen": timezone.now(), "hostname": socket.gethostname()}
    )
