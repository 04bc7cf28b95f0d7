"""Prometheus metrics: durable counters in the database and a collector that reads every value at scrape time.

Nothing is kept in process memory, so every web process (and every machine) gives the same answer, and a
restart loses no count. Counters are bumped once per batch with ``incr`` (one UPDATE with F(): concurrent
workers never lose an increment); gauges come from console.health, the same functions as /healthz and the panel.
"""

from __future__ import annotations

import logging
import math

from prometheus_client.core import CollectorRegistry, CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from . import health
from .broker import queue_depths
from .counters import CHECKINS, REPORTS_REJECTED, counters

log = logging.getLogger(__name__)


class ConsoleCollector(Collector):
    """Reads the current values at scrape time. A source that fails is left out and its check_up is 0."""

    def collect(self):
        checks = health.run_checks(info=True)
        up = GaugeMetricFamily("console_health_check_up", "1 when the health check passes", labels=["check"])
        for name, check in checks.items():
            up.add_metric([name], 1.0 if check.ok else 0.0)
        yield up
        yield from self._counters()
        yield from self._queues()
        yield from self._gauges(checks)

    def _counters(self):
        try:
            values = counters()
        except Exception as exc:
            log.warning("Counters unavailable for /metrics: %s", exc)
            return
        yield CounterMetricFamily(
            "console_checkins",
            "Device check-ins recorded (rate() gives check-ins/s)",
            value=values.get(CHECKINS, 0),
        )
        yield CounterMetricFamily(
            "console_reports_rejected",
            "Device reports refused by the device channel",
            value=values.get(REPORTS_REJECTED, 0),
        )

    def _queues(self):
        try:
            depths = queue_depths()
        except Exception as exc:
            log.warning("Queue depths unavailable for /metrics: %s", exc)
            return
        family = GaugeMetricFamily(
            "console_queue_depth", "Messages waiting in a Celery queue", labels=["queue"]
        )
        for queue, depth in depths.items():
            family.add_metric([queue], depth)
        yield family

    def _gauges(self, checks: dict[str, health.Check]):
        simple = [
            (
                "console_devices_overdue",
                "Managed devices more than 10 minutes late for a check-in",
                "devices_overdue",
            ),
            (
                "console_leases_expired",
                "Devices whose check-in lease has passed (lost work)",
                "lease_backlog",
            ),
            ("console_broker_quarantined_messages", "Unreadable broker messages set aside", "quarantined"),
            ("console_workers_alive", "Celery workers with a fresh heartbeat", "worker"),
        ]
        for metric, help_text, name in simple:
            value = checks[name].value
            if value is not None:
                yield GaugeMetricFamily(metric, help_text, value=value)
        beat = checks["beat"].value
        yield GaugeMetricFamily(
            "console_beat_seconds_since_heartbeat",
            "Seconds since Celery beat last stamped its heartbeat (NaN when never)",
            value=beat if beat is not None else math.nan,
        )


registry = CollectorRegistry(auto_describe=False)
registry.register(ConsoleCollector())
