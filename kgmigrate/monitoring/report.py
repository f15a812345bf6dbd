"""A run's full story, from the ledger (undo rows included): JSON for machines, Markdown for
people, and a throughput chart (PNG), because people would rather look than read.

Everything here is read-only and computed after the fact, so a report can be made for any run,
running or ended, forward or rolled back, as often as wanted.
"""

import json
from datetime import datetime
from pathlib import Path

from kgmigrate.graph.base import GraphBackend
from kgmigrate.ledger import Ledger, failed_batch
from kgmigrate.ledger.batches import restored_seq
from kgmigrate.model.records import DIRECTION_WORDS, Conflict, FailedBatch, _Model
from kgmigrate.model.status import MigrationStatus
from kgmigrate.monitoring.monitor import MigrationMetrics, step_metrics, summarize
from kgmigrate.runs import conflicts

CHART_BUCKETS = 40  # points on the throughput chart


class BatchEvent(_Model):
    """A committed batch (forward) or restore batch (rollback), for the timeline."""

    step: int
    seq: int
    at: datetime
    entities: int
    kind: str  # "forward" or "restore"
    worker: str | None = None


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


def build_report(backend: GraphBackend, run_id: str) -> RunReport | None:
    """None when there is no such run."""
    ledger = Ledger(backend)
    run = ledger.run(run_id)
    if run is None:
        return None
    timeline, failures, steps, failed = [], [], [], []
    for step in run.steps:  # each step's batches and restores read once, for both uses
        batches = ledger.batches(step.id) if step.batched else []
        restores = ledger.restores(step.id)
        steps.append(step_metrics(step, batches, len(restores)))
        for batch in batches:
            if batch.status is MigrationStatus.COMPLETED and batch.finished_at is not None:
                timeline.append(BatchEvent(step=step.order, seq=batch.seq, at=batch.finished_at,
                                           entities=batch.entities, kind="forward",
                                           worker=batch.worker))
            if batch.error:
                failures.append(f"step {step.order}: {batch.error}")
            if batch.status is MigrationStatus.FAILED:
                failed.append(failed_batch(step, batch))
        for restore in restores:
            if restore.get("finished_at"):
                timeline.append(BatchEvent(
                    step=step.order, seq=restored_seq(restore["id"]),
                    at=datetime.fromisoformat(restore["finished_at"]),
                    entities=int(restore.get("restored") or 0), kind="restore"))
    timeline.sort(key=lambda event: event.at)
    return RunReport(metrics=summarize(run, steps), history=run.history, error_log=run.error_log,
                     backup_ref=run.backup_ref, created_by=run.created_by, target=run.target,
                     conflicts=conflicts(backend, run), failures=failures, timeline=timeline,
                     failed_batches=failed)


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
        f"# Run {m.run_id}: {m.status.value} ({DIRECTION_WORDS[m.direction]})", "",
        f"- {_migrations(m.direction)}: {', '.join(m.migrations)}"
        + (f" (target {report.target})" if report.target else ""),
        f"- started {m.started_at:%Y-%m-%d %H:%M:%S} UTC by {report.created_by}, "
        f"{_duration(m.duration_s)}" + ("" if m.finished_at else " so far"),
        f"- steps completed: {m.steps_completed} of {m.steps_total}",
        f"- entities changed: {m.entities_done:,} of {m.entities_planned:,} planned"
        + (f" ({m.entities_per_s:,.0f}/s)" if m.entities_per_s else ""),
        f"- batches: {m.batches_done:,} of {m.batches_total:,} committed, "
        f"{m.batches_failed} failed, {m.retries} retries (error rate {m.error_rate:.2%})",
        f"- validation: {_validation(m.validation_success)}",
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
    """Entities per second over the run, forward batches and rollback restores apart."""
    import matplotlib

    matplotlib.use("Agg")  # no display: render to a file
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 3.2), dpi=100)
    m = report.metrics
    applied = "undone (downgrade)" if m.direction == "down" else "applied"
    start = report.metrics.started_at
    end = report.metrics.finished_at or max((e.at for e in report.timeline), default=start)
    span = max((end - start).total_seconds(), 1e-3)
    width = span / CHART_BUCKETS
    for kind, colour in (("forward", "tab:blue"), ("restore", "tab:orange")):
        buckets = [0] * CHART_BUCKETS
        for event in report.timeline:
            if event.kind == kind:
                index = min(int((event.at - start).total_seconds() / width), CHART_BUCKETS - 1)
                buckets[max(index, 0)] += event.entities
        if any(buckets):
            xs = [(i + 0.5) * width for i in range(CHART_BUCKETS)]
            axes.plot(xs, [b / width for b in buckets], color=colour, marker=".",
                      label=applied if kind == "forward" else "restored (rollback)")
    if not report.timeline:
        axes.text(0.5, 0.5, "no batches committed", ha="center", va="center",
                  transform=axes.transAxes)
    else:
        axes.legend(loc="upper right")
    axes.set_xlabel("seconds since the run started")
    axes.set_ylabel("entities / s")
    axes.set_title(f"{m.run_id}: {m.status.value} ({DIRECTION_WORDS[m.direction]})",
                   fontsize=10)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


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


def _validation(success: bool | None) -> str:
    return {True: "every step passed", False: "failed", None: "no step validated yet"}[success]


def _cell(text: str) -> str:
    """One Markdown table cell or list item: no pipes or line breaks from user text."""
    return " ".join(text.replace("|", "\\|").split())
