"""Prometheus metrics: HTTP counters kept by the API process, and state read at scrape time.

Jobs by status, queue depth, worker heartbeats and stage durations come from the database and
the broker when `/metrics` is scraped, so every API replica reports the same cluster-wide view
no matter which worker (on which host) did the work.
"""

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeHistogramMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from app.db import session_scope
from app.jobs import repository
from app.queue import producer
from app.settings import get_settings
from app.tables import JobStatus

log = logging.getLogger("shears.api")

REQUESTS = Counter("shears_http_requests_total", "HTTP requests", ["route", "method", "status"])
LATENCY = Histogram("shears_http_request_seconds", "HTTP request latency", ["route", "method"])

STATUSES = tuple(JobStatus)
# Stage durations are read off the most recent finished jobs: a histogram of that window (a gauge
# histogram: it can shrink as old jobs leave the window).
RECENT_JOBS = 500
BUCKETS_S = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)


def queue_depths(queues: list[str]) -> dict[str, int]:
    """Messages waiting in each queue (Redis or the filesystem transport alike)."""
    depths: dict[str, int] = {}
    with producer().connection_for_read() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
        channel = conn.default_channel
        for queue in queues:
            try:
                depths[queue] = int(channel.queue_declare(queue=queue, passive=True).message_count)
            except Exception:  # a queue nothing was ever sent to does not exist yet
                depths[queue] = 0
    return depths


def _buckets(values: list[float]) -> list[tuple[str, float]]:
    """Cumulative counts per upper bound, ending with +Inf."""
    out = [(str(bound), float(sum(v <= bound for v in values))) for bound in BUCKETS_S]
    return [*out, ("+Inf", float(len(values)))]


class ClusterCollector(Collector):
    def describe(self) -> Iterator[Any]:
        return iter(())  # nothing to query when the collector is registered

    def collect(self) -> Iterator[Any]:
        settings = get_settings()
        jobs = GaugeMetricFamily(
            "shears_jobs", "Jobs by status (prune and profile jobs; a sweep is its points)", labels=["status"]
        )
        stages = GaugeHistogramMetricFamily(
            "shears_stage_duration_seconds",
            f"Duration of each pipeline stage over the last {RECENT_JOBS} succeeded jobs",
            labels=["stage"],
        )
        heartbeat = GaugeMetricFamily(
            "shears_worker_heartbeat_age_seconds",
            "Seconds since each worker's last heartbeat",
            labels=["worker", "queues"],
        )
        try:
            with session_scope() as session:
                counts = repository.count_by_status(session)
                results = repository.recent_results(session, RECENT_JOBS)
                workers = repository.workers(session)
                now = datetime.now(UTC)
                for worker in workers:
                    age = (now - worker.heartbeat_at).total_seconds()
                    heartbeat.add_metric([worker.id, worker.queues], round(age, 3))
        except Exception as exc:
            log.warning("metrics: database unreachable: %s", type(exc).__name__)
            return
        for status in STATUSES:
            jobs.add_metric([status], counts.get(status, 0))
        durations: dict[str, list[float]] = {}
        for result in results:
            for stage, seconds in ((result or {}).get("timings_s") or {}).items():
                durations.setdefault(stage, []).append(float(seconds))
        for stage, values in sorted(durations.items()):
            stages.add_metric([stage], _buckets(values), gsum_value=sum(values))
        yield jobs
        yield stages
        yield heartbeat
        depth = GaugeMetricFamily("shears_queue_depth", "Messages waiting in each Celery queue", labels=["queue"])
        try:
            for queue, n in queue_depths(settings.all_queues).items():
                depth.add_metric([queue], n)
        except Exception as exc:
            log.warning("metrics: broker unreachable: %s", type(exc).__name__)
            return
        yield depth


REGISTRY.register(ClusterCollector())
