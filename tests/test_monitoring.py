"""Monitoring on real runs: the metrics (MigrationMonitor and the Prometheus exporter) agree
with the ledger, reports tell a completed and a rolled-back run, hooks fire in order, and the
workers' logs are JSON lines carrying run, step and batch."""

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from itertools import pairwise
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
from prometheus_client.parser import text_string_to_metric_families

from kgmigrate import DataMigrationManager
from kgmigrate.errors import ConfigError, KgmError
from kgmigrate.graph.base import GraphBackend
from kgmigrate.ledger import Ledger
from kgmigrate.model.records import MigrationStatus, RunRecord, status_changes
from kgmigrate.monitoring import hooks
from kgmigrate.monitoring.chart import Series, ThroughputChart, chart_data, render
from kgmigrate.monitoring.chart import _title as chart_title
from kgmigrate.monitoring.monitor import MigrationMonitor
from kgmigrate.monitoring.report import RunReport, build_report, write_report
from tests.conftest import Execution, free_port
from tests.items import create_in_batch_order
from tests.test_execution import start, wait_for

TWO_STEPS = """
from kgmigrate import Migration, ops

migration = Migration(author="test", batch_size=500, steps=[
    ops.add_property("Item", "status", "new"),
    ops.batched("Item", "SET e.score = e.i * 2", validation={validation!r}),
])
"""


def load(graph: GraphBackend, n: int = 20_000) -> None:
    create_in_batch_order(graph, n, "{i: i}")


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exporter's /metrics, keyed by name and labels."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def sample(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
           **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def ledger_done(graph: GraphBackend, run_id: str) -> tuple[int, int]:
    run = Ledger(graph).run(run_id)
    assert run is not None
    return (sum(s.entities_done for s in run.steps), sum(s.batches_done for s in run.steps))


@pytest.fixture
def exporter_port(execution: Execution) -> Iterator[int]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "kgmigrate.cli", "metrics-server", "--port", str(port)],
        env={**execution.env, **dict(os.environ)},
        stdout=(execution.logs / "exporter.log").open("ab"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).close()
            break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise AssertionError((execution.logs / "exporter.log").read_text()) from None
            time.sleep(0.2)
    yield port
    process.terminate()
    process.wait(timeout=10)


def test_metrics_scraped_during_a_real_run_match_the_ledger(
        execution: Execution, graph: GraphBackend, exporter_port: int,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a two-step run on two workers, with the hook probe and JSON logs
    events = tmp_path / "events.jsonl"
    monkeypatch.setenv("KGMIGRATE_HOOKS", "tests.hook_probe")
    monkeypatch.setenv("KGM_HOOK_LOG", str(events))
    execution.env.update(KGMIGRATE_HOOKS="tests.hook_probe", KGM_HOOK_LOG=str(events))
    load(graph)
    execution.write_migration("V0001__two.py", TWO_STEPS.format(validation="e.score > 0"))
    execution.start_worker()
    execution.start_worker()
    run_id = start(execution, graph)
    # When the exporter is scraped while batches are committing
    wait_for(graph, run_id, lambda r: r.steps[0].batches_done >= 5)
    before = ledger_done(graph, run_id)
    during = scrape(exporter_port)
    after = ledger_done(graph, run_id)
    # Then its figures lie between two ledger reads taken around the scrape
    done = sample(during, "kgmigrate_run_entities", run_id=run_id, kind="done")
    batches = sample(during, "kgmigrate_run_batches", run_id=run_id, kind="done")
    assert before[0] <= done <= after[0] and before[1] <= batches <= after[1]
    assert sample(during, "kgmigrate_run_info", run_id=run_id, status="in_progress",
                  direction="up", migrations="V0001") == 1
    run = _wait(graph, run_id)
    assert run.status is MigrationStatus.COMPLETED, run.error_log
    # And once the run has ended they equal the ledger exactly
    ended = scrape(exporter_port)
    assert sample(ended, "kgmigrate_run_entities", run_id=run_id, kind="done") == 40_000
    assert sample(ended, "kgmigrate_run_entities", run_id=run_id, kind="planned") == 40_000
    assert sample(ended, "kgmigrate_run_batches", run_id=run_id, kind="done") == sum(
        s.batches_done for s in run.steps) == 80
    assert sample(ended, "kgmigrate_run_batches", run_id=run_id, kind="failed") == 0
    assert sample(ended, "kgmigrate_run_progress_ratio", run_id=run_id) == 1.0
    assert sample(ended, "kgmigrate_batch_latency_seconds_count", run_id=run_id) == 80
    assert sample(ended, "kgmigrate_batch_latency_seconds_bucket", run_id=run_id,
                  le="+Inf") == 80
    assert sample(ended, "kgmigrate_batch_errors_total", run_id=run_id) == 0
    assert sample(ended, "kgmigrate_run_steps", run_id=run_id, kind="completed") == 2
    # and the ticket's get_migration_metrics says the same, without dividing by zero
    metrics = MigrationMonitor(graph).get_migration_metrics(run_id)
    assert metrics is not None
    assert (metrics.steps_completed, metrics.steps_total) == (2, 2)
    assert (metrics.entities_done, metrics.error_rate, metrics.eta_s) == (40_000, 0.0, 0.0)
    assert metrics.validation_success is True and metrics.duration_s > 0
    assert MigrationMonitor(graph).get_migration_metrics("run_none") is None
    # And the hooks fired in order: migration, then each step around its 40 batches (the last
    # event, after_migration, follows the COMPLETED transition: wait for it, within a bound)
    wait_for(graph, run_id, lambda r: events.read_text().rstrip().endswith("}") and json.loads(
        events.read_text().splitlines()[-1])["name"] == "after_migration", timeout_s=60)
    seen = [json.loads(line) for line in events.read_text().splitlines()]
    names = [e["name"] for e in seen]
    assert names[0] == "before_migration" and names[-1] == "after_migration"
    assert names.count("before_batch") == names.count("after_batch") == 80
    assert [(e["name"], e["step"]) for e in seen if e["name"].endswith("_step")] == [
        ("before_step", 1), ("after_step", 1), ("before_step", 2), ("after_step", 2)]
    assert {e["run_id"] for e in seen} == {run_id}
    # and the hook that raises on every batch was logged and ignored
    # And the workers' kgmigrate lines are JSON carrying the run, step and batch
    lines = [json.loads(line) for path in execution.logs.glob("worker-*.log")
             for line in path.read_text().splitlines() if line.startswith('{"at"')]
    committed = [line for line in lines if line["message"].startswith("batch ")
                 and " completed: " in line["message"]]
    assert len(committed) == 80
    assert {(line["run_id"], line["version"]) for line in committed} == {(run_id, "V0001")}
    assert {line["step"] for line in committed} == {1, 2}
    assert any("a hook that raises" in line.get("exception", "") for line in lines)


def test_report_tells_a_completed_and_a_rolled_back_run(
        execution: Execution, graph: GraphBackend, tmp_path: Path) -> None:
    # Given a run of 2 x 12 batches whose second step fails validation on one entity (so in
    # one batch; a step fails once all its batches have run)
    load(graph, 6000)
    execution.write_migration("V0001__two.py", TWO_STEPS.format(validation="e.i <> 5995"))
    execution.start_worker(concurrency=2)
    run = _wait(graph, start(execution, graph))
    assert run.status is MigrationStatus.ROLLED_BACK, run.error_log
    # When its report is made
    report = build_report(graph, run.id)
    assert report is not None
    paths = write_report(report, tmp_path / "reports")
    # Then it tells the failure, the rollback, and draws both on the chart
    m = report.metrics
    assert m.rolled_back and m.validation_success is False
    assert (m.batches_done, m.batches_failed, m.error_rate) == (23, 1, 1 / 24)
    assert m.restored_batches == sum(s.batches_done for s in run.steps) > 0
    assert {e.kind for e in report.timeline} == {"forward", "restore"}
    assert any("failed validation" in f for f in report.failures)
    md = paths[1].read_text()
    assert "# Run " in md and "rolled_back" in md and "## What went wrong" in md
    assert "rollback:" in md and "![throughput]" in md
    assert json.loads(paths[0].read_text())["metrics"]["run_id"] == run.id
    png = paths[2].read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
    # And for a completed run (the same migration, now valid everywhere) too
    execution.write_migration("V0001__two.py", TWO_STEPS.format(validation="e.i > 0"))
    done = _wait(graph, start(execution, graph))
    assert done.status is MigrationStatus.COMPLETED, done.error_log
    report = build_report(graph, done.id)
    assert report is not None and report.metrics.validation_success is True
    assert {e.kind for e in report.timeline} == {"forward"}
    assert sum(e.entities for e in report.timeline) == 12_000
    paths = write_report(report, tmp_path / "reports")
    assert "completed" in paths[1].read_text() and paths[2].stat().st_size > 10_000
    # and through the ticket's manager
    manager = DataMigrationManager(backend=graph)
    metrics = manager.get_migration_metrics(done.id)
    assert metrics is not None and metrics.entities_done == 12_000
    assert [p.suffix for p in manager.report(done.id, tmp_path / "api")] == [".json", ".md",
                                                                             ".png"]
    with pytest.raises(KgmError, match="no run run_nope"):
        manager.report("run_nope")


SCORED = """
from kgmigrate import Migration, ops

migration = Migration(author="test", batch_size=500, steps=[
    ops.add_property("Item", "status", "new"),
    ops.create_index("Item", "i"),
    ops.batched("Item", "SET e.score = e.i * 2"),
])
"""
RANKED = """
from kgmigrate import Migration, ops

migration = Migration(author="test", batch_size=500, depends_on=["V0001"], steps=[
    ops.batched("Item", "SET e.rank = e.i % 7"),
    ops.batched("Item", "SET e.tier = e.rank + 1", validation={validation!r}),
])
"""


@pytest.mark.timeout(600)  # two runs of five steps and a rollback: 200 s on a loaded Neo4j
def test_the_report_chart_is_drawn_from_the_ledgers_steps_failure_and_rollback(
        execution: Execution, graph: GraphBackend, output_dir: Path) -> None:
    # Given two migrations of five steps (one a schema step) over 6,000 items, the last step
    # failing validation on one entity: the run fails there and rolls back
    load(graph, 6000)
    execution.write_migration("V0001__score.py", SCORED)
    execution.write_migration("V0002__rank.py", RANKED.format(validation="e.i <> 5990"))
    execution.start_worker(concurrency=2)
    run = _wait(graph, start(execution, graph))
    assert run.status is MigrationStatus.ROLLED_BACK, run.error_log
    # When its report is made
    report, chart, png = _charted(graph, run.id, output_dir)
    # Then each step is a band from its recorded start to its recorded end, in order, named
    ledger = Ledger(graph)
    steps = [b for b in chart.bands if b.kind == "step"]
    assert [(b.step, b.label, b.status) for b in steps] == [
        (s.order, s.description, s.status.value) for s in run.steps]
    assert [s.status.value for s in run.steps][-1] == "failed"
    for band, step in zip(steps, run.steps, strict=True):
        assert step.started_at is not None and step.finished_at is not None
        assert band.start_s == _since(run, step.started_at)
        assert band.end_s == _since(run, step.finished_at)
        assert band.entities == sum(b.entities for b in ledger.batches(step.id)
                                    if b.status is MigrationStatus.COMPLETED)
    assert not steps[1].batched and all(b.batched for b in steps if b.step != 2)
    # and the failure is marked when the run's history says it failed, after its step ended,
    # with the failed batch inside that step
    changes = status_changes(run.history)
    rolling_back = next(at for status, at in changes if status is MigrationStatus.ROLLING_BACK)
    assert chart.failed_s == _since(run, rolling_back) >= steps[-1].end_s
    assert chart.failure is not None and "failed validation" in chart.failure
    assert len(chart.failed_batches_s) == 1
    assert steps[-1].start_s <= chart.failed_batches_s[0] <= steps[-1].end_s
    # and the rollback is a phase of its own, from `rolling_back` to `rolled_back`, cut into
    # the steps it undid one after another, last first, each restoring what its step applied
    undone = [b for b in chart.bands if b.kind == "rollback"]
    assert [b.step for b in undone] == [5, 4, 3, 2, 1]
    assert (undone[0].start_s, undone[-1].end_s) == (
        _since(run, rolling_back), _since(run, changes[-1][1]))
    assert all(a.end_s == b.start_s for a, b in pairwise(undone))
    assert {b.status for b in undone} == {"rolled_back"}
    assert undone[0].label == "undo 5 (rollback: rolled back)" and undone[1].label == "undo 4"
    assert undone[0].start_s >= steps[-1].end_s
    assert chart.entities_applied == sum(s.entities_done for s in run.steps) > 0
    for band, step in zip(undone, reversed(run.steps), strict=True):
        assert band.entities == sum(r["restored"] for r in ledger.restores(step.id))
    assert sum(b.entities for b in undone) == chart.entities_restored == sum(
        r["restored"] for s in run.steps for r in ledger.restores(s.id))
    assert chart.entities_restored == chart.entities_applied + 1  # and the index, dropped
    # and each batched step, and each step's part of the rollback, have a smoothed series
    # within their raw rates, whose mean is the step's recorded rate
    assert [(s.kind, s.step) for s in chart.series] == [
        ("forward", 1), ("forward", 3), ("forward", 4), ("forward", 5), ("restore", 5),
        ("restore", 4), ("restore", 3), ("restore", 1)]
    recorded = {s.order: s.entities_per_s for s in report.metrics.steps}
    for series in chart.series:
        _assert_smoothed(series, chart)
        if series.kind == "forward":
            assert recorded[series.step] == pytest.approx(series.average, rel=1e-3)
    assert chart.average_rate == report.metrics.entities_per_s
    # and the title counts the steps that applied something apart from those that completed
    assert (f"{chart.entities_applied:,} entities applied by 5 of 5 steps (4 completed)"
            in chart_title(chart))
    # and the PNG is written
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 20_000

    # Given the same migrations, now valid everywhere: the run completes
    execution.write_migration("V0002__rank.py", RANKED.format(validation="e.tier > 0"))
    done = _wait(graph, start(execution, graph))
    assert done.status is MigrationStatus.COMPLETED, done.error_log
    # When its report is made
    report, chart, png = _charted(graph, done.id, output_dir)
    # Then it has five completed step bands one after another, no failure and no rollback
    steps = [b for b in chart.bands if b.kind == "step"]
    assert [b.status for b in chart.bands] == ["completed"] * 5 == [b.status for b in steps]
    assert all(a.end_s <= b.start_s for a, b in pairwise(steps))
    assert (chart.failed_s, chart.failure, chart.failed_batches_s) == (None, None, [])
    assert chart.entities_applied == 4 * 6000 and chart.entities_restored == 0
    for series in chart.series:
        _assert_smoothed(series, chart)
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 20_000


MANY_STEPS = """
from kgmigrate import Migration, ops

migration = Migration(author="test", batch_size=250, steps=[
    ops.batched("Item", f"SET e.a_rather_long_property_name_{{k}} = coalesce(e.i, 0) + {{k}}")
    for k in range({steps})
])
"""


def test_the_report_chart_of_many_steps_labels_them_without_overlap(
        execution: Execution, graph: GraphBackend, output_dir: Path) -> None:
    # Given a completed run of 14 steps with long descriptions, some far narrower than others
    load(graph, 500)
    execution.write_migration("V0001__many.py", MANY_STEPS.format(steps=14))
    execution.start_worker(concurrency=2)
    run = _wait(graph, start(execution, graph))
    assert run.status is MigrationStatus.COMPLETED, run.error_log
    report = build_report(graph, run.id)
    assert report is not None
    # When its chart is drawn
    chart = chart_data(report)
    drawing = render(chart)
    try:
        renderer = drawing.canvas.get_renderer()
        (axes,) = drawing.axes
        inside = axes.get_window_extent(renderer)
        texts = [(t.get_text(), t.get_window_extent(renderer)) for t in axes.texts]
        key = [t.get_text() for t in drawing.texts]
    finally:
        plt.close(drawing)
    write_report(report, output_dir)
    # Then it has a band per step, no two labels on it overlap, each label fits the chart and
    # is its step's number, then as much of its description as fits
    assert [b.step for b in chart.bands] == list(range(1, 15))
    for index, (text, box) in enumerate(texts):
        assert inside.x0 <= box.x0 and box.x1 <= inside.x1 + 1, text
        assert not any(box.overlaps(other) for _, other in texts[index + 1:]), text
    labelled = [int(text.split()[0]) for text, _ in texts if text.split()[0].isdigit()]
    assert labelled == sorted(labelled) and len(labelled) >= 7
    # and the key under the chart lists every step with its figures
    for step in run.steps:
        assert any(line.startswith(f"{step.order:>2}. V0001  on :Item:") and "500 in" in line
                   for line in key), step.order


def _charted(graph: GraphBackend, run_id: str, out: Path) -> tuple[RunReport, ThroughputChart,
                                                                   bytes]:
    """The run's report, its chart's data, and the PNG `write_report` wrote for it."""
    report = build_report(graph, run_id)
    assert report is not None
    return report, chart_data(report), write_report(report, out)[2].read_bytes()


def _since(run: RunRecord, moment: datetime) -> float:
    return (moment - run.created_at).total_seconds()


def _assert_smoothed(series: Series, chart: ThroughputChart) -> None:
    """The raw rates cover the series' span and add up to its entities; the smoothed curve
    spans it, stays within the raw rates, and its mean is the entities over the span (up to
    the sampling of the curve)."""
    raw = series.raw
    assert raw[0].start_s == series.start_s and raw[-1].end_s == series.end_s
    assert all(a.end_s == b.start_s for a, b in pairwise(raw))
    assert sum(r.rate * (r.end_s - r.start_s) for r in raw) == pytest.approx(series.entities)
    low, high = min(r.rate for r in raw), max(r.rate for r in raw)
    times, rates = [t for t, _ in series.points], [v for _, v in series.points]
    assert times[0] == series.start_s and times[-1] == pytest.approx(series.end_s)
    assert all(low * (1 - 1e-9) <= v <= high * (1 + 1e-9) for v in rates)
    area = sum((t1 - t0) * (v0 + v1) / 2 for t0, t1, v0, v1 in zip(
        times, times[1:], rates, rates[1:], strict=False))
    assert area / (series.end_s - series.start_s) == pytest.approx(series.average, rel=0.05)
    assert 0 < chart.window_s <= max(chart.duration_s, 0.05)


def test_the_report_command_writes_its_files(execution: Execution, graph: GraphBackend,
                                             tmp_path: Path) -> None:
    load(graph, 1000)
    execution.write_migration("V0001__two.py", TWO_STEPS.format(validation="true"))
    execution.start_worker()
    run = _wait(graph, start(execution, graph))
    done = subprocess.run(
        [sys.executable, "-m", "kgmigrate.cli", "report", "--out", str(tmp_path / "out")],
        env={**os.environ, **execution.env}, capture_output=True, text=True,
        check=False)
    assert done.returncode == 0, done.stderr
    assert f"Run {run.id}: completed" in done.stdout
    written = {p.name for p in (tmp_path / "out").iterdir()}
    assert written == {f"{run.id}.{x}" for x in ("json", "md", "png")}
    missing = subprocess.run([sys.executable, "-m", "kgmigrate.cli", "report", "run_nope"],
                             env={**os.environ, **execution.env},
                             capture_output=True, text=True, check=False)
    assert missing.returncode == 1 and "no run run_nope" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_hooks_refuse_unknown_names_and_survive_a_raising_hook() -> None:
    calls: list[str] = []
    hooks.add("after_step", lambda e: calls.append(e.run_id))
    hooks.add("after_step", lambda e: 1 / 0)  # type: ignore[func-returns-value]
    try:
        hooks.emit("after_step", "run_1", step=1)
        assert calls == ["run_1"]
        with pytest.raises(ConfigError, match="no hook 'after_everything'"):
            hooks.add("after_everything", print)  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match=r"cannot import no\.such\.module"):
            hooks.load_configured("no.such.module")
    finally:
        hooks.clear()


def _wait(graph: GraphBackend, run_id: str) -> RunRecord:
    from kgmigrate import runs

    return runs.wait(graph, run_id, timeout_s=240)


def test_a_step_with_batches_without_a_recorded_duration_is_charted_from_commit_gaps() -> None:
    """Batches of an older kgmigrate record no duration; one of them at the same moment and
    size as one that does must not break the report (their tuples compared None with a
    float): the step is charted from the gaps between commits, every entity counted."""
    from kgmigrate.monitoring.chart import Band, Commit, _series

    band = Band(kind="step", step=1, version="V0001", label="x", status="completed",
                start_s=0.0, end_s=10.0, batched=True, entities=0)
    series = _series(band, [Commit(5.0, 100, 1, 1.0), Commit(5.0, 100, 1, None),
                            Commit(8.0, 50, 1, None)])
    assert series.entities == 250 and series.batches == 3
    assert series.raw[0].start_s == 0.0 and series.raw[-1].end_s == 10.0
    assert sum(s.rate * (s.end_s - s.start_s) for s in series.raw) == pytest.approx(250)
    assert series.raw[0].rate == pytest.approx(100 / 5.0)  # the first commit, from the start
