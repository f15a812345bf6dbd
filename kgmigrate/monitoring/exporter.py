"""A Prometheus exporter of migration progress, read from the ledger at each scrape.

Nothing is counted in memory: every figure is the ledger's, so the exporter can restart, run
anywhere, and agree with `kgmigrate status` and `kgmigrate report`. It covers the most recent
runs (`runs`, default 5), which include every run still going. Flower's own /metrics (Celery
task and worker figures) stays available beside it.
"""

import threading
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from kgmigrate.graph.base import GraphBackend
from kgmigrate.model.status import MigrationStatus
from kgmigrate.monitoring.monitor import MigrationMetrics, MigrationMonitor

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)


class LedgerCollector(Collector):
    def __init__(self, backend: GraphBackend, runs: int = 5) -> None:
        self.backend, self.runs = backend, runs
        self._lock = threading.Lock()  # one graph connection, scrapes may overlap

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            monitor = MigrationMonitor(self.backend)
            metrics = [monitor.metrics(run) for run in monitor.ledger.runs(limit=self.runs)]
        yield from families(metrics)


def families(runs: list[MigrationMetrics]) -> Iterator[Metric]:
    """The metric families for these runs (one label set per run, and per step)."""
    run = ["run_id"]
    info = GaugeMetricFamily("kgmigrate_run_info",
                             "A run: its status, direction (up: an upgrade, down: a "
                             "downgrade) and migrations (1).",
                             labels=["run_id", "status", "direction", "migrations"])
    status = GaugeMetricFamily("kgmigrate_runs", "Recent runs by status.", labels=["status"])
    entities = GaugeMetricFamily("kgmigrate_run_entities", "Entities planned and done.",
                                 labels=[*run, "kind"])
    batches = GaugeMetricFamily("kgmigrate_run_batches", "Batches: total, done, failed.",
                                labels=[*run, "kind"])
    steps = GaugeMetricFamily("kgmigrate_run_steps", "Steps: total and completed.",
                              labels=[*run, "kind"])
    progress = GaugeMetricFamily("kgmigrate_run_progress_ratio",
                                 "Entities done / planned (planned steps only).", labels=run)
    throughput = GaugeMetricFamily("kgmigrate_run_entities_per_second",
                                   "Entities per second while steps ran.", labels=run)
    eta = GaugeMetricFamily("kgmigrate_run_eta_seconds",
                            "Seconds left for the planned entities (absent when unknown).",
                            labels=run)
    duration = GaugeMetricFamily("kgmigrate_run_duration_seconds",
                                 "Seconds since the run started (to its end once ended).",
                                 labels=run)
    errors = CounterMetricFamily("kgmigrate_batch_errors", "Batches that failed.", labels=run)
    retries = CounterMetricFamily("kgmigrate_batch_retries",
                                  "Batch task deliveries beyond the first.", labels=run)
    throttled = CounterMetricFamily("kgmigrate_run_throttled_seconds",
                                    "Seconds its batches waited for the run's throttle.",
                                    labels=run)
    restored = CounterMetricFamily("kgmigrate_rollback_restored_batches",
                                   "Batches a rollback restored from the undo log.", labels=run)
    rollbacks = CounterMetricFamily("kgmigrate_rollbacks",
                                    "Recent runs that were rolled back (or blocked rolling "
                                    "back).", labels=["outcome"])
    step_entities = GaugeMetricFamily("kgmigrate_step_entities", "Per step: planned and done.",
                                      labels=[*run, "step", "kind"])
    latency = HistogramMetricFamily(
        "kgmigrate_batch_latency_seconds",
        "From a worker taking a batch to its commit (committed batches).", labels=run)
    counts: dict[str, int] = {}
    for m in runs:
        rid = [m.run_id]
        counts[m.status.value] = counts.get(m.status.value, 0) + 1
        info.add_metric([m.run_id, m.status.value, m.direction, ",".join(m.migrations)], 1)
        for kind, value in (("planned", m.entities_planned), ("done", m.entities_done)):
            entities.add_metric([*rid, kind], value)
        for kind, value in (("total", m.batches_total), ("done", m.batches_done),
                            ("failed", m.batches_failed)):
            batches.add_metric([*rid, kind], value)
        steps.add_metric([*rid, "total"], m.steps_total)
        steps.add_metric([*rid, "completed"], m.steps_completed)
        progress.add_metric(rid, m.entities_done / m.entities_planned
                            if m.entities_planned else 0.0)
        throughput.add_metric(rid, m.entities_per_s or 0.0)
        if m.eta_s is not None:
            eta.add_metric(rid, m.eta_s)
        duration.add_metric(rid, m.duration_s)
        errors.add_metric(rid, m.batches_failed)
        retries.add_metric(rid, m.retries)
        restored.add_metric(rid, m.restored_batches)
        throttled.add_metric(rid, m.throttled_s)
        for step in m.steps:
            for kind, value in (("planned", step.entities_total), ("done", step.entities_done)):
                step_entities.add_metric([*rid, str(step.order), kind], value)
        latency.add_metric(rid, *_histogram([s for step in m.steps
                                             for s in step.batch_latency_s]))
    for name, count in counts.items():
        status.add_metric([name], count)
    for outcome in (MigrationStatus.ROLLED_BACK, MigrationStatus.ROLLBACK_BLOCKED):
        rollbacks.add_metric([outcome.value], counts.get(outcome.value, 0))
    yield from (info, status, entities, batches, steps, progress, throughput, eta, duration,
                errors, retries, throttled, restored, rollbacks, step_entities, latency)


def _histogram(values: list[float]) -> tuple[list[tuple[str, float]], float]:
    """Cumulative buckets (Prometheus style, +Inf last) and the sum."""
    buckets = [(str(bound), float(sum(v <= bound for v in values)))
               for bound in LATENCY_BUCKETS]
    return [*buckets, ("+Inf", float(len(values)))], sum(values)


def serve(backend: GraphBackend, *, host: str, port: int, runs: int = 5) -> None:
    """Start the HTTP endpoint (/metrics) in a background thread."""
    registry = CollectorRegistry()
    registry.register(LedgerCollector(backend, runs=runs))
    start_http_server(port, addr=host, registry=registry)
