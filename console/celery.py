"""The Celery application: workers run check-ins, onboarding and re-evaluation; beat ticks the schedule.

Workers scale out across machines (they only share PostgreSQL and Redis), which is our answer when one machine
is not enough. The schedule is static (no django-celery-beat, which pins an older Django).
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")

app = Celery("console")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
