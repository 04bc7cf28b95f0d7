"""Celery tasks of the reports app: the snapshot of a Graph cached report (reports.cached)."""

from __future__ import annotations

from celery import shared_task

from reports import cached


@shared_task(ignore_result=True, name="reports.tasks.compute_cached_report")
def compute_cached_report(pk: int, generation: int) -> None:
    """Compute a cachedReportConfiguration's snapshot: inProgress -> completed (or failed, with the reason)."""
    cached.compute(pk, generation)
