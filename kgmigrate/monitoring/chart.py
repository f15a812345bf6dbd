"""The report's throughput chart: what it shows is computed here (`chart_data`, tested on real
runs), apart from how it is drawn (`draw`, matplotlib).

Throughput is computed per step, from the ledger's own times: the step's start and end and
each committed batch's `finished_at`, entity count and the time its worker spent on it (a
rollback pass likewise, from its `rolling_back` and end in the run's history and each restore's
`finished_at`, cut into the steps it undid one after another: last step first). The *raw* rate
spreads each batch's entities over the time its worker spent on it, adds up batches that ran at
once, and is 0 where none ran (a run waiting for workers, a throttle's wait, planning and
validation). A restore records no duration: between two of its commits the rate is the
entities of the later one over the time between them. The curve drawn is that raw rate
averaged over a rolling window centred on each point, mirrored at the step's edges, so it
never leaves the range of the raw rates and the area under it is the step's entities: its
mean over the step is the step's recorded rate. The window adapts to the run: about a
fortieth of the time steps and rollbacks ran, and at least six typical batch times, rounded
up to a round number, and stated on the chart.

Idle time between phases (a run waiting for a worker, or an operator's rollback hours after the
failure) is drawn as a narrow hatched break, labelled with the run's status then and its
length, when it would otherwise squeeze the phases into a corner.
"""

import bisect
import math
import statistics
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from kgmigrate.model.records import _Model, status_changes
from kgmigrate.monitoring.monitor import run_kind

if TYPE_CHECKING:
    from kgmigrate.monitoring.report import RunReport

WINDOW_SHARE = 40  # the window: about this fraction of the active time...
WINDOW_GAPS = 6  # ...and at least this many typical gaps between two commits
MIN_WINDOW_S = 0.05
POINTS_PER_WINDOW = 16  # samples of the smoothed curve per window width
MAX_POINTS = 400  # per series
BREAK_MIN_S = 1.0  # an idle gap is drawn as a break when longer than this...
BREAK_SHARE = 0.3  # ...and than this share of the active time
BREAK_WIDTH = 0.08  # the break's width, as a share of the active time
KEY_ROWS = 12  # steps listed under the chart per column, two columns at most
KEY_CHARS = 96  # a step's description in the key, at most (less when its column is full)
KEY_ROW_IN = 0.22  # a key row's height, in inches
CHART_IN = 4.4  # the chart's height without the key, in inches: title, axes, legend
BELOW_AXES_IN, ABOVE_AXES_IN = 0.62, 0.8  # tick labels, x label and legend; the title


class Segment(_Model):
    """The raw rate between two commits (or the start, or the end) of a series."""

    start_s: float
    end_s: float
    rate: float  # entities / s


class Series(_Model):
    """One step's applied entities, or those a rollback pass restored of one step, over
    time."""

    kind: Literal["forward", "restore"]
    step: int | None
    start_s: float
    end_s: float
    entities: int
    batches: int
    raw: list[Segment]
    points: list[tuple[float, float]]  # (seconds since the run started, entities / s), smoothed

    @property
    def average(self) -> float:
        """Entities over the series' whole span (what the ledger records as its rate)."""
        return self.entities / (self.end_s - self.start_s) if self.end_s > self.start_s else 0.0


class Band(_Model):
    """A step, or the part of a rollback pass that undid one step (a pass that restored
    nothing: the whole pass, `step` None), on the time axis, in seconds since the run
    started."""

    kind: Literal["step", "rollback"]
    step: int | None
    version: str | None
    label: str
    status: str
    start_s: float
    end_s: float
    batched: bool
    entities: int  # applied by the step, or restored by the pass


class Gap(_Model):
    """Idle time drawn as a narrow break instead of to scale, with the run's status then."""

    start_s: float
    end_s: float
    status: str


class ThroughputChart(_Model):
    run_id: str
    status: str
    direction: str  # upgrade or downgrade (`run_kind`: and whether it was reverted)
    migrations: list[str]
    duration_s: float
    window_s: float
    bands: list[Band]
    series: list[Series]
    gaps: list[Gap]
    failed_s: float | None
    failure: str | None
    failed_batches_s: list[float]
    entities_applied: int
    entities_restored: int
    average_rate: float | None  # the run's, as `metrics` reports it (over the steps' time)
    steps_total: int


def chart_data(report: "RunReport") -> ThroughputChart:
    """What the chart draws, in seconds since the run started."""
    m = report.metrics
    origin = m.started_at

    def since(moment: datetime) -> float:
        return (moment - origin).total_seconds()

    bands: list[Band] = []
    for index, phase in enumerate(report.phases):
        start = since(phase.started_at)
        following = report.phases[index + 1] if index + 1 < len(report.phases) else None
        end = (since(phase.finished_at) if phase.finished_at is not None
               else since(following.started_at) if following is not None else m.duration_s)
        bands.append(Band(kind=phase.kind, step=phase.step, version=phase.version,
                          label=phase.label, status=phase.status, start_s=start,
                          end_s=max(end, start), batched=phase.batched, entities=0))
    passes = [i for i, b in enumerate(bands) if b.kind == "rollback"]
    commits: dict[int, list[Commit]] = {i: [] for i in range(len(bands))}
    for event in report.timeline:
        at = since(event.at)
        owner: int | None
        if event.kind == "forward":
            owner = next((i for i, b in enumerate(bands) if b.step == event.step), None)
        else:  # a restore: in the last rollback pass started by then (or the first)
            owner = next((i for i in reversed(passes) if bands[i].start_s <= at),
                         passes[0] if passes else None)
        if owner is not None:
            commits[owner].append(Commit(at, event.entities, event.step, event.seconds))
    bands, by_band = _undo_per_step(bands, commits)
    series: list[Series] = []
    for index, band in enumerate(bands):
        band = bands[index] = band.model_copy(
            update={"entities": sum(c.entities for c in by_band[index])})
        if band.batched and band.end_s > band.start_s and by_band[index]:
            series.append(_series(band, by_band[index]))
    window = _window(bands, series)
    series = [s.model_copy(update={"points": _smooth(s, window)}) for s in series]
    return ThroughputChart(
        run_id=m.run_id, status=m.status.value, direction=run_kind(m),
        migrations=m.migrations,
        duration_s=m.duration_s, window_s=window, bands=bands, series=series,
        gaps=_gaps(bands, m.duration_s, [(status.value, since(at))
                                          for status, at in status_changes(report.history)]),
        failed_s=since(report.failed_at) if report.failed_at else None,
        failure=report.failure,
        failed_batches_s=[since(e.at) for e in report.failed_events],
        entities_applied=sum(e.entities for e in report.timeline if e.kind == "forward"),
        entities_restored=sum(e.entities for e in report.timeline if e.kind == "restore"),
        average_rate=m.entities_per_s, steps_total=m.steps_total)


class Commit(NamedTuple):
    """A committed batch (or restore) at `at` seconds, and how long its worker spent on it
    (None: not recorded, as for restores)."""

    at: float
    entities: int
    step: int
    seconds: float | None


def _undo_per_step(bands: list[Band], commits: dict[int, list[Commit]]
                   ) -> tuple[list[Band], list[list[Commit]]]:
    """Each rollback pass cut into the steps it undid, one after another (last step first, as
    the rollback goes): a step's part runs from the end of the part before (or the pass's
    start) to its own last restore (the last part: to the pass's end). A pass that restored
    nothing stays whole. With each band, its commits (time, entities)."""
    batched = {b.step: b.batched for b in bands if b.kind == "step"}
    cut: list[Band] = []
    by_band: list[list[Commit]] = []
    for index, band in enumerate(bands):
        mine = sorted(commits[index], key=lambda c: c.at)
        if band.kind != "rollback" or not mine:
            cut.append(band)
            by_band.append(mine)
            continue
        order = list(dict.fromkeys(c.step for c in mine))  # by first restore
        start = band.start_s
        for n, step in enumerate(order):
            done = [c for c in mine if c.step == step]
            end = band.end_s if n == len(order) - 1 else max(done[-1].at, start)
            pass_ = f" (rollback: {band.status.replace('_', ' ')})" if n == 0 else ""
            cut.append(band.model_copy(update={
                "step": step, "label": f"undo {step}{pass_}", "start_s": start, "end_s": end,
                "batched": batched.get(step, True)}))
            by_band.append(done)
            start = end
    return cut, by_band


def _series(band: Band, commits: list[Commit]) -> Series:
    """The raw rate of `commits` over the band (clock skew between hosts clamped into it):
    each batch's entities over the time its worker spent on it, added up where batches ran at
    once, 0 where none ran (no worker, a throttle's wait, planning); when a duration is not
    recorded, over the time since the commit before."""
    start, end = band.start_s, band.end_s
    epsilon = min(1e-3, (end - start) / 2)
    timed = all(c.seconds for c in commits)
    spans = []  # (from, to, entities)
    previous = start
    for c in sorted(commits, key=lambda c: c.at):
        at = min(max(c.at, start + epsilon), end)
        began = max(at - c.seconds, start) if timed and c.seconds else previous
        spans.append((min(began, at - epsilon) if at - began < epsilon else began, at,
                      c.entities))
        previous = at
    return Series(kind="forward" if band.kind == "step" else "restore", step=band.step,
                  start_s=start, end_s=end, entities=sum(n for _, _, n in spans),
                  batches=len(commits), raw=_sweep(spans, start, end), points=[])


def _sweep(spans: list[tuple[float, float, int]], start: float, end: float) -> list[Segment]:
    """Piecewise-constant rates over [start, end] from (from, to, entities) spans, each spread
    evenly over its own time, overlapping spans added; exactly 0 where none runs."""
    events: dict[float, list[tuple[int, float]]] = {}
    for lo, hi, n in spans:
        rate = n / (hi - lo)
        events.setdefault(lo, []).append((1, rate))
        events.setdefault(hi, []).append((-1, -rate))
    segments: list[Segment] = []
    running, rate, at = 0, 0.0, start
    for moment in sorted({start, end, *events}):
        if moment > at:
            shown = rate if running else 0.0
            if segments and segments[-1].rate == shown:
                segments[-1] = segments[-1].model_copy(update={"end_s": moment})
            else:
                segments.append(Segment(start_s=at, end_s=moment, rate=shown))
            at = moment
        for count, change in events.get(moment, []):
            running, rate = running + count, rate + change
        if not running:
            rate = 0.0  # no drift left over from adding and taking away
    return segments


def _window(bands: list[Band], series: list[Series]) -> float:
    """About a fortieth of the active time, and at least a few typical gaps between commits,
    rounded up to 1, 2, 2.5 or 5 times a power of ten."""
    active = sum(b.end_s - b.start_s for b in bands)
    gaps = [seg.end_s - seg.start_s for s in series for seg in s.raw if seg.rate > 0]
    wanted = max(active / WINDOW_SHARE, WINDOW_GAPS * statistics.median(gaps) if gaps else 0.0,
                 MIN_WINDOW_S)
    power: float = 10.0 ** math.floor(math.log10(wanted))
    return next(f * power for f in (1.0, 2.0, 2.5, 5.0, 10.0) if f * power >= wanted * (1 - 1e-9))


def _smooth(series: Series, window: float) -> list[tuple[float, float]]:
    """The raw rate's mean over [t - window/2, t + window/2] at evenly spaced t (from the
    cumulative count). Near an edge, the part of the window outside the series is mirrored
    back into it: every point is still a mean over a whole window of the series' raw rates,
    and the area under the curve is the series' entities (a window cut at the edge would
    weigh the commits next to it double). A series shorter than half a window is drawn at its
    average."""
    times = [series.start_s] + [seg.end_s for seg in series.raw]
    counts = [0.0]
    for seg in series.raw:
        counts.append(counts[-1] + seg.rate * (seg.end_s - seg.start_s))

    def cumulative(at: float) -> float:
        i = min(max(bisect.bisect_right(times, at), 1), len(times) - 1)
        t0, t1 = times[i - 1], times[i]
        share = (at - t0) / (t1 - t0) if t1 > t0 else 1.0
        return counts[i - 1] + (counts[i] - counts[i - 1]) * min(max(share, 0.0), 1.0)

    start, end = series.start_s, series.end_s
    span, half = end - start, window / 2
    n = min(max(math.ceil(span / window * POINTS_PER_WINDOW), 2), MAX_POINTS)
    points = []
    for k in range(n + 1):
        at = start + span * k / n
        if span <= half:  # too short to smooth within: its average throughout
            points.append((at, series.average))
            continue
        lo, hi = at - half, at + half
        mass = cumulative(min(hi, end)) - cumulative(max(lo, start))
        if lo < start:  # the part of the window before the start, mirrored into the series
            mass += cumulative(start + (start - lo)) - cumulative(start)
        if hi > end:  # and the part after its end
            mass += cumulative(end) - cumulative(end - (hi - end))
        points.append((at, mass / window))
    return points


def _gaps(bands: list[Band], duration: float, changes: list[tuple[str, float]]) -> list[Gap]:
    """Idle stretches (no step and no rollback going) long enough to crowd the rest out, with
    the run's status halfway through each (`changes`: its history, in seconds)."""
    if not bands:
        return []
    active = sum(b.end_s - b.start_s for b in bands)
    spans, covered = [], 0.0
    for band in sorted(bands, key=lambda b: b.start_s):
        spans.append((covered, band.start_s))
        covered = max(covered, band.end_s)
    spans.append((covered, duration))
    found = []
    for start, end in spans:
        if end - start > max(BREAK_MIN_S, BREAK_SHARE * active):
            middle = (start + end) / 2
            status = next((s for s, at in reversed(changes) if at <= middle), "pending")
            found.append(Gap(start_s=start, end_s=end, status=status))
    return found


# -- drawing ---------------------------------------------------------------------------------

APPLIED, RESTORED, FAILED, STEP_SHADE = "#1f77b4", "#e8710a", "#d62728", "#eef1f5"


class _Axis:
    """Seconds since the run started -> the x the chart draws, idle gaps squeezed."""

    def __init__(self, gaps: list[Gap], active: float) -> None:
        self.gaps = gaps
        self.width = max(active, 1e-3) * BREAK_WIDTH

    def __call__(self, at: float) -> float:
        shift = 0.0
        for gap in self.gaps:
            if at >= gap.end_s:
                shift += (gap.end_s - gap.start_s) - self.width
            elif at > gap.start_s:
                return gap.start_s - shift + self.width * (at - gap.start_s) / (
                    gap.end_s - gap.start_s)
        return at - shift


def draw(chart: ThroughputChart, path: Path) -> None:
    """Render `chart` as a PNG at `path`."""
    import matplotlib.pyplot as plt

    drawn = render(chart)
    drawn.savefig(path)
    plt.close(drawn)


def render(chart: ThroughputChart) -> Any:
    """The chart as a matplotlib Figure (the caller closes it)."""
    import matplotlib

    matplotlib.use("Agg")  # no display: render to a file
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    steps = [b for b in chart.bands if b.kind == "step"]
    shown = steps[:2 * KEY_ROWS]
    key_rows = min(len(shown), KEY_ROWS) + (1 if len(steps) > len(shown) else 0)
    key_in = KEY_ROW_IN * key_rows + 0.25
    height = CHART_IN + key_in
    figure = plt.figure(figsize=(10, height), dpi=110)
    axes = figure.add_axes((0.075, (key_in + BELOW_AXES_IN) / height, 0.9,
                            (CHART_IN - BELOW_AXES_IN - ABOVE_AXES_IN) / height))
    active = sum(b.end_s - b.start_s for b in chart.bands)
    x = _Axis(chart.gaps, active)
    right = x(max([chart.duration_s] + [b.end_s for b in chart.bands]))
    axes.set_xlim(0, max(right, 1e-3))

    peak = max((rate for s in chart.series for _, rate in s.points), default=0.0)
    top = (peak or 1.0) * 1.45
    axes.set_ylim(0, top)

    # the steps and rollback passes, as bands with their boundaries
    for index, band in enumerate(chart.bands):
        left, width = x(band.start_s), x(band.end_s) - x(band.start_s)
        if band.kind == "rollback":
            colour, alpha = RESTORED, 0.12
        elif band.status == "failed":
            colour, alpha = FAILED, 0.08
        else:
            colour, alpha = STEP_SHADE if index % 2 == 0 else "#f7f8fa", 1.0
        axes.axvspan(left, left + width, color=colour, alpha=alpha, lw=0, zorder=0)
        for edge in (left, left + width):
            axes.axvline(edge, color="#9aa4b1", lw=0.7, ls=":", zorder=1)
    for gap in chart.gaps:
        axes.axvspan(x(gap.start_s), x(gap.end_s), facecolor="none", edgecolor="#b0b0b0",
                     hatch="///", lw=0, zorder=0)
        axes.text((x(gap.start_s) + x(gap.end_s)) / 2, top * 0.5,
                  f"{gap.status.replace('_', ' ')}, {_duration(gap.end_s - gap.start_s)}",
                  rotation=90, ha="center",
                  va="center", fontsize=8, color="#555555",
                  bbox={"facecolor": "white", "edgecolor": "none", "pad": 1})
    _band_labels(axes, figure, chart.bands, x, top,
                 min((b.start_s for b in chart.bands), default=0.0))

    # the smoothed rate: per step, and per rollback pass
    for s in chart.series:
        colour = APPLIED if s.kind == "forward" else RESTORED
        xs, ys = [x(t) for t, _ in s.points], [rate for _, rate in s.points]
        axes.plot(xs, ys, color=colour, lw=1.8, zorder=3)
        axes.fill_between(xs, ys, color=colour, alpha=0.15, lw=0, zorder=2)
    if chart.average_rate and steps:  # the steps' average, across the steps only
        axes.hlines(chart.average_rate, x(min(b.start_s for b in steps)),
                    x(max(b.end_s for b in steps)), color="#555555", lw=0.9, ls="--", zorder=2)
    if chart.failed_s is not None:
        axes.axvline(x(chart.failed_s), color=FAILED, lw=1.6, zorder=4)
    if chart.failed_batches_s:
        axes.plot([x(t) for t in chart.failed_batches_s], [0] * len(chart.failed_batches_s),
                  ls="none", marker="X", ms=8, color=FAILED, clip_on=False, zorder=6)
    if not chart.series:
        axes.text(0.5, 0.45, "no batches committed" if chart.bands else "no step started yet",
                  ha="center", va="center",
                  transform=axes.transAxes, color="#555555")

    ticks = _ticks(chart, x, right)
    axes.set_xticks([x(t) for t in ticks])
    long_run = max(ticks, default=0) >= 600
    axes.set_xticklabels([_clock(t) if long_run else f"{round(t, 3) + 0.0:g}" for t in ticks],
                         fontsize=8)
    active_s = sum(s.end_s - s.start_s for s in chart.series)
    commits = sum(s.batches for s in chart.series) * chart.window_s / active_s if active_s else 0
    axes.set_xlabel(("time since the run started (h:mm:ss)" if long_run
                     else "seconds since the run started")
                    + (f";  rates: mean over a rolling {_duration(chart.window_s)} window"
                       + (f" (about {commits:.0f} batches)" if commits >= 1.5 else "")
                       if chart.series else ""), fontsize=9)
    axes.set_ylabel("entities / s", fontsize=9)
    axes.yaxis.set_major_formatter(FuncFormatter(lambda v, _: _rate(v)))
    axes.tick_params(axis="y", labelsize=8)
    axes.grid(axis="y", alpha=0.3)
    axes.set_title(_title(chart), fontsize=10, loc="left")

    _legend(axes, chart)
    _key(figure, shown, len(steps), key_in / height)
    return figure


def _legend(axes: Any, chart: ThroughputChart) -> None:
    """What the lines and marks mean, under the axes: only those the chart has."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles: list[Any] = [Line2D([], [], color=APPLIED, lw=1.8, label="applied, per step")]
    if any(s.kind == "restore" for s in chart.series) or any(
            b.kind == "rollback" for b in chart.bands):
        handles += [Line2D([], [], color=RESTORED, lw=1.8, label="restored (rollback)")]
    if chart.failed_s is not None or chart.failed_batches_s:
        handles += [Line2D([], [], color=FAILED, lw=1.6, marker="X", ms=6,
                           label="failure (line), failed batch (X)")]
    if chart.average_rate:
        handles += [Line2D([], [], color="#555555", lw=0.9, ls="--",
                           label=f"steps' average, {_rate(chart.average_rate)}/s")]
    if chart.gaps:
        handles += [Patch(facecolor="none", edgecolor="#b0b0b0", hatch="///",
                          label="no step running, not to scale")]
    axes.legend(handles=handles, loc="upper left", bbox_to_anchor=(0, -0.13), ncol=5,
                fontsize=8, frameon=False, handlelength=2.2, columnspacing=1.4)


def _band_labels(axes: Any, figure: Any, bands: list[Band], x: _Axis, top: float,
                 pending_s: float) -> None:
    """Each band's number, and as much of its description as fits in the band, at its top;
    on the second row when the first is taken there, left out when both are (the key under the
    chart lists every step). Measured as drawn, so labels never overlap."""
    renderer = figure.canvas.get_renderer()
    to_px = axes.transData.transform
    pad = 3.0
    ends = [-math.inf, -math.inf]  # the right end of each row's last label, in pixels

    def place(text: str, at: float, row: int, **style: Any) -> Any:
        label = axes.text(at, top * (0.965 - 0.075 * row), text, ha="left", va="top",
                          fontsize=8, zorder=6, **style)
        label.set_x(axes.transData.inverted().transform((to_px((at, 0))[0] + pad, 0))[0])
        return label

    if pending_s > 0 and x(pending_s) >= pending_s:  # a lead drawn to scale, not as a break
        label = place("pending", 0, 0, color="#777777", style="italic")
        if label.get_window_extent(renderer).x1 > to_px((x(pending_s), 0))[0] - pad:
            label.remove()
    for band in bands:
        left, right = to_px((x(band.start_s), 0))[0], to_px((x(band.end_s), 0))[0]
        colour = RESTORED if band.kind == "rollback" else (
            FAILED if band.status == "failed" else "#333333")
        style = {"color": colour, "fontweight": "bold" if band.kind == "rollback" else "normal"}
        name = (("rollback" if band.step is None else f"undo {band.step}")
                if band.kind == "rollback" else str(band.step))
        full = (band.label if band.kind == "rollback" and band.step is not None
                else f"rollback: {band.status.replace('_', ' ')}" if band.kind == "rollback"
                else f"{name} {' '.join(band.label.split())}")
        row = next((r for r in (0, 1) if left + pad > ends[r] + 2), None)
        if row is None:
            continue
        label = place(full, x(band.start_s), row, **style)
        extent = label.get_window_extent(renderer)
        room = int((right - pad - extent.x0) / extent.width * len(full)) + 1
        while extent.x1 > right - pad and room > len(name) + 8:  # cut to fit, as drawn
            room -= 1
            label.set_text(_truncate(full, room))
            extent = label.get_window_extent(renderer)
        if extent.x1 > right - pad:  # not even a word of it: the number only
            label.set_text(name)
            extent = label.get_window_extent(renderer)
        ends[row] = extent.x1


def _key(figure: Any, steps: list[Band], total: int, height: float) -> None:
    """Each step under the chart: number, migration, description, entities, time and rate."""
    if not steps:
        return
    columns = 1 if len(steps) <= KEY_ROWS else 2
    renderer = figure.canvas.get_renderer()
    limit = figure.bbox.width * (0.9 if columns == 1 else 0.45)  # a column's width, in pixels
    for index, band in enumerate(steps):
        chars = KEY_CHARS
        column, row = divmod(index, KEY_ROWS)
        seconds = band.end_s - band.start_s
        figures = (f"{band.entities:,} in {_duration(seconds)}"
                   + (f" ({_rate(band.entities / seconds)}/s)"
                      if band.entities and seconds > 0 else "")
                   if band.batched else f"one statement, {_duration(seconds)}")
        status = "" if band.status == "completed" else f" [{band.status}]"
        line = figure.text(
            0.075 + column * 0.47,
            height - (0.1 + row * KEY_ROW_IN) / figure.get_size_inches()[1],
            "", fontsize=7.5, va="top", ha="left",
            color=FAILED if band.status == "failed" else "#222222")
        while True:  # as much of the description as fits the column, as drawn
            described = _truncate(band.label, chars)
            line.set_text(f"{band.step:>2}. {band.version}  {described}:  {figures}{status}")
            if chars <= 8 or line.get_window_extent(renderer).width <= limit:
                break
            chars -= 2
    if total > len(steps):
        figure.text(0.075, height - (0.1 + KEY_ROWS * KEY_ROW_IN) / figure.get_size_inches()[1],
                    f"... and {total - len(steps)} more steps (see the report's table)",
                    fontsize=7.5, va="top", ha="left", color="#444444")


def _title(chart: ThroughputChart) -> str:
    migrations = ", ".join(chart.migrations)
    if len(migrations) > 40:
        migrations = f"{chart.migrations[0]} ... {chart.migrations[-1]}"
    line = (f"{chart.run_id}: {chart.status.replace('_', ' ')} ({chart.direction})  ·  "
            f"{migrations}  ·  "
            f"{_duration(chart.duration_s)} in all")
    steps = [b for b in chart.bands if b.kind == "step"]
    completed = sum(b.status == "completed" for b in steps)
    totals = [f"{chart.entities_applied:,} entities applied by {len(steps)} of "
              f"{chart.steps_total} steps"
              + (f" ({completed} completed)" if completed < len(steps) else "")]
    if chart.average_rate:
        totals[0] += f" at {_rate(chart.average_rate)}/s on average"
    if any(b.kind == "rollback" for b in chart.bands):
        seconds = sum(b.end_s - b.start_s for b in chart.bands if b.kind == "rollback")
        totals.append(f"{chart.entities_restored:,} restored in {_duration(seconds)}")
    text = f"{line}\n" + "; ".join(totals)
    if chart.failure:
        text += f"\nfailed: {_truncate(chart.failure, 120)}"
    return text


def _ticks(chart: ThroughputChart, x: _Axis, right: float) -> list[float]:
    """Round times on each stretch drawn to scale, in proportion to its width, plus the end of
    each break; none closer than a sixteenth of the width to the previous one."""
    from matplotlib.ticker import MaxNLocator

    edges = [0.0] + [t for g in chart.gaps for t in (g.start_s, g.end_s)] + [
        max(chart.duration_s, max((b.end_s for b in chart.bands), default=0.0))]
    candidates: list[float] = []
    for lo, hi in zip(edges[::2], edges[1::2], strict=True):
        share = (x(hi) - x(lo)) / max(right, 1e-9)
        bins = max(1, round(10 * share))
        values = MaxNLocator(nbins=bins, steps=[1, 2, 2.5, 5, 10]).tick_values(lo, hi)
        candidates += [t for t in values if lo - 1e-9 <= t <= hi + 1e-9]
        if lo > 0:  # where a break ends, rounded up to the stretch's own precision
            scale = 10.0 ** max(0, -math.floor(math.log10(values[1] - values[0])))
            candidates.append(min(math.ceil(lo * scale) / scale, hi))
    kept: list[float] = []
    for t in sorted(set(candidates)):
        if not kept or x(t) - x(kept[-1]) >= right / 16:
            kept.append(t)
    return kept


def _truncate(text: str, chars: int) -> str:
    """`text` on one line in at most `chars` characters, its end cut."""
    text = " ".join(text.split())
    return text if len(text) <= chars else text[:max(chars - 1, 1)].rstrip() + "…"


def _rate(value: float) -> str:
    if value >= 1e6:
        return f"{value / 1e6:.3g}M"
    if value >= 1e3:
        return f"{value / 1e3:.3g}k"
    return f"{value:.3g}" if value else "0"


def _duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms" if seconds < 0.1 else f"{seconds:.2g} s"
    if seconds < 60:
        return f"{seconds:.3g} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


def _clock(seconds: float) -> str:
    hours, rest = divmod(round(seconds), 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"

