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
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from kgmigrate import DataMigrationManager
from kgmigrate.errors import ConfigError, KgmError
from kgmigrate.graph.base import GraphBackend
from kgmigrate.ledger import Ledger
from kgmigrate.model.records import MigrationStatus, RunRecord
from kgmigrate.monitoring import hooks
from kgmigrate.monitoring.monitor import MigrationMonitor
from kgmigrate.monitoring.report import build_report, write_report
from tests.conftest import Execution, free_port
from tests.test_execution import start, wait_for

TWO_STEPS = """
from kgmigrate import Migration, ops

migration = Migration(author="test", batch_size=500, steps=[
    ops.add_property("Item", "status", "new"),
    ops.batched("Item", "SET e.score = e.i * 2", validation={validation!r}),
])
"""


def load(graph: GraphBackend, n: int = 20_000) -> None:
    graph.write(f"UNWIND range(1, {n}) AS i CREATE (:Item {{i: i}})")


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
