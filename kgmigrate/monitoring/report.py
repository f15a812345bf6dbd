"""A run's full story, from the ledger (undo rows included): JSON for machines, Markdown for
people, and a throughput chart (PNG), because people would rather look than read.

Everything here is read-only and computed after the fact, so a report can be made for any run,
running or ended, forward or rolled back, as often as wanted.
"""

import json
from datetime import datetime
from pathlib import Path
from typing import Literal

from kgmigrate.graph.base import GraphBackend
from kgmigrate.ledger import Ledger, failed_batch
from kgmigrate.ledger.batches import restored_seq
from kgmigrate.model.records import (
    Conflict,
    FailedBatch,
    RunRecord,
    _Model,
    status_changes,
)
from kgmigrate.model.status import MigrationStatus
from kgmigrate.monitoring.chart import chart_data, draw
from kgmigrate.monitoring.monitor import MigrationMetrics, run_kind, step_metrics, summarize
from kgmigrate.runs import conflicts


class BatchEvent(_Model):
    """A committed batch (forward) or restore batch (rollback), for the timeline; a failed
    batch (`failed`) in `RunReport.failed_batches`."""

    step: int
    seq: int
    at: datetime
    entities: int
    kind: str  # "forward", "restore" or "failed"
    worker: str | None = None
    seconds: float | None = None  # how long its worker spent on it (forward batches)


class Phase(_Model):
    """A span of the run, from the ledger's own times: a step (from its start, planning
    included, to its end, validation included) or a rollback pass (from `rolling_back` to the
    status that ended it). `finished_at` is None while it goes on."""

    kind: Literal["step", "rollback"]
    label: str  # the step's description, or how the pass ended
    status: str
    started_at: datetime
    finished_at: datetime | None
    step: int | None = None
    version: str | None = None
    batched: bool = True


class RunReport(_Model):
    metrics: MigrationMetrics
    history: list[str]
    error_log: str | None
    backup_ref: str | None
    created_by: str
    target: str | None
    conflicts: list[Conflict]
    failures: list[str]  # each failed batch's error, by step and batch
    timeline: list[BatchEvent]
    # each failed batch, with the entities that failed its validation and their values
    failed_batches: list[FailedBatch]
    phases: list[Phase]  # the steps and rollback passes, in time order
    failed_at: datetime | None  # when the run failed (its history), if it did
    failure: str | None  # the first failed step's error
    failed_events: list[BatchEvent]  # when each failed batch ended (the chart)


def build_report(backend: GraphBackend, run_id: str) -> RunReport | None:
    """None when there is no such run."""
    ledger = Ledger(backend)
    run = ledger.run(run_id)
    if run is None:
        return None
    timeline, failures, steps, failed = [], [], [], []
    failed_events: list[BatchEvent] = []
    for step in run.steps:  # each step's batches and restores read once, for both uses
        batches = ledger.batches(step.id) if step.batched else []
        restores = ledger.restores(step.id)
        steps.append(step_metrics(step, batches, len(restores)))
        for batch in batches:
            if batch.status is MigrationStatus.COMPLETED and batch.finished_at is not None:
                timeline.append(BatchEvent(step=step.order, seq=batch.seq, at=batch.finished_at,
                                           entities=batch.entities, kind="forward",
                                           worker=batch.worker, seconds=batch.seconds))
            if batch.error:
                failures.append(f"step {step.order}: {batch.error}")
            if batch.status is MigrationStatus.FAILED:
                failed.append(failed_batch(step, batch))
                if batch.finished_at is not None:
                    failed_events.append(BatchEvent(
                        step=step.order, seq=batch.seq, at=batch.finished_at,
                        entities=batch.entities, kind="failed", worker=batch.worker))
        for restore in restores:
            if restore.get("finished_at"):
                timeline.append(BatchEvent(
                    step=step.order, seq=restored_seq(restore["id"]),
                    at=datetime.fromisoformat(restore["finished_at"]),
                    entities=int(restore.get("restored") or 0), kind="restore"))
    timeline.sort(key=lambda event: event.at)
    first_failed = next((s for s in run.steps if s.status is MigrationStatus.FAILED), None)
    return RunReport(metrics=summarize(run, steps), history=run.history, error_log=run.error_log,
                     backup_ref=run.backup_ref, created_by=run.created_by, target=run.target,
                     conflicts=conflicts(backend, run), failures=failures, timeline=timeline,
                     phases=phases(run), failed_at=failed_at(run),
                     failure=first_failed.error if first_failed else None,
                     failed_batches=failed,
                     failed_events=sorted(failed_events, key=lambda event: event.at))


def failed_at(run: RunRecord) -> datetime | None:
    """When the run failed: its first `failed`, or, when the automatic rollback followed the
    failure at once, its first `rolling_back` (an operator's rollback of a healthy run is no
    failure)."""
    if run.reverts:  # completed, then reverted: an operator's choice, not a failure
        return None
    changes = status_changes(run.history)
    failed = next((at for status, at in changes if status is MigrationStatus.FAILED), None)
    if failed is not None or not (run.error_log or any(
            s.status is MigrationStatus.FAILED for s in run.steps)):
        return failed
    return next((at for status, at in changes if status is MigrationStatus.ROLLING_BACK), None)


def phases(run: RunRecord) -> list[Phase]:
    """Each step that started, then each rollback pass, in time order."""
    found = [Phase(kind="step", label=s.description, status=s.status.value, step=s.order,
                   version=s.version, batched=s.batched, started_at=s.started_at,
                   finished_at=s.finished_at)
             for s in run.steps if s.started_at is not None]
    changes = status_changes(run.history)
    for index, (status, at) in enumerate(changes):
        if status is MigrationStatus.ROLLING_BACK:
            end = changes[index + 1] if index + 1 < len(changes) else None
            found.append(Phase(kind="rollback", label="rollback",
                               status=end[0].value if end else status.value,
                               started_at=at, finished_at=end[1] if end else None))
    return sorted(found, key=lambda phase: phase.started_at)


def write_report(report: RunReport, out_dir: Path) -> list[Path]:
    """`<run>.json`, `<run>.md` and `<run>.png` in `out_dir`; the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    base = out_dir / report.metrics.run_id
    paths = [base.with_suffix(".json"), base.with_suffix(".md"), base.with_suffix(".png")]
    paths[0].write_text(json.dumps(report.model_dump(mode="json"), indent=2) + "\n")
    paths[1].write_text(markdown(report, chart=paths[2].name))
    throughput_chart(report, paths[2])
    return paths


def markdown(report: RunReport, *, chart: str | None = None) -> str:
    m = report.metrics
    lines = [
        f"# Run {m.run_id}: {m.status.value} ({run_kind(m)})", "",
        f"- {_migrations(m.direction)}: {', '.join(m.migrations)}"
        + (f" (target {report.target})" if report.target else ""),
        f"- started {m.started_at:%Y-%m-%d %H:%M:%S} UTC by {report.created_by}, "
        f"{_duration(m.duration_s)}" + ("" if m.finished_at else " so far"),
        f"- steps completed: {m.steps_completed} of {m.steps_total}",
        f"- entities changed: {m.entities_done:,} of {m.entities_planned:,} planned"
        + (f" ({m.entities_per_s:,.0f}/s)" if m.entities_per_s else ""),
        f"- batches: {m.batches_done:,} of {m.batches_total:,} committed, "
        f"{m.batches_failed} failed, {m.retries} retries (error rate {m.error_rate:.2%})",
        f"- validation: {_validation(m.validation_success, m.status.is_final)}",
    ]
    if m.eta_s is not None and not m.status.is_final:
        lines.append(f"- ETA: {_duration(m.eta_s)} for the planned work left")
    if report.backup_ref:
        lines.append(f"- snapshot before the run: `{report.backup_ref}`")
    if m.rolled_back or m.restored_batches:
        lines.append(f"- rollback: {m.restored_batches} batches restored from the undo log, "
                     f"{len(report.conflicts)} conflicts")
    if chart:
        lines += ["", f"![throughput]({chart})"]
    lines += ["", "## Steps", "",
              "| # | migration | step | status | entities | batches | failed | retries | "
              "validation | time | restored |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in m.steps:
        lines.append(
            f"| {s.order} | {s.version} | {_cell(s.description)} | {s.status.value} | "
            f"{s.entities_done:,} / {s.entities_total:,} | {s.batches_done} / "
            f"{s.batches_total} | {s.batches_failed} | {s.retries} | {s.validation or '-'} | "
            f"{_duration(s.duration_s) if s.duration_s is not None else '-'} | "
            f"{s.restored_batches} |")
    if report.error_log:
        lines += ["", "## What went wrong", "", "```", report.error_log, "```"]
    if report.failures:
        lines += ["", "## Failed batches", ""] + [f"- {_cell(f)}" for f in report.failures[:50]]
    for failed in report.failed_batches[:10]:
        lines += _offending(failed)
    if report.conflicts:
        lines += ["", "## Conflicts left by the rollback", "",
                  "| step | batch | key | reason |", "|---|---|---|---|"]
        lines += [f"| {c.step} | {c.batch} | `{c.key}` | {_cell(c.reason)} |"
                  for c in report.conflicts[:200]]
    lines += ["", "## History", ""] + [f"- {entry}" for entry in report.history]
    return "\n".join(lines) + "\n"


def throughput_chart(report: RunReport, path: Path) -> None:
    """Entities per second over the run, per step and per rollback pass, smoothed, with the
    steps, the failure and the rollback marked (see kgmigrate.monitoring.chart)."""
    draw(chart_data(report), path)


def _migrations(direction: str) -> str:
    return ("migrations undone (their inverses, newest first)" if direction == "down"
            else "migrations")


def _offending(failed: FailedBatch) -> list[str]:
    """A failed batch's offending entities: keys, business key and values."""
    if not failed.offending:
        return []
    named = list(failed.offending[0].business_key)
    lines = ["", f"### Step {failed.step} ({failed.version}), batch {failed.batch}: "
             f"{failed.failing or 0:,} of {failed.checked or 0:,} entities failed validation"
             + (f"; the first {len(failed.offending)}" if (failed.failing or 0)
                > len(failed.offending) else ""), "",
             "| key | " + "".join(f"{_cell(n)} | " for n in named) + "values after the change |",
             "|---|" + "---|" * len(named) + "---|"]
    for entity in failed.offending:
        lines.append(f"| `{entity.key}` | "
                     + "".join(f"{_cell(_json(v))} | " for v in entity.business_key.values())
                     + f"{_cell(_json(entity.properties))} |")
    return lines


def _json(value: object) -> str:
    return json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes} min {rest} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


def _validation(success: bool | None, ended: bool) -> str:
    """`None`: no step has validated (one that declares no validation never does)."""
    if success is None:
        return "none (no step validated)" if ended else "no step validated yet"
    return "every step passed" if success else "failed"


def _cell(text: str) -> str:
    """One Markdown table cell or list item: no pipes or line breaks from user text."""
    return " ".join(text.replace("|", "\\|").split())
