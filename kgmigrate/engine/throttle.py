"""Holding a batch back until its run's throttle lets it start (see kgmigrate.model.throttle).

A batch waits here, in its worker, before it starts. It naps in short spells: between two it
reads its run again (a pause, a cancel or a changed throttle reaches it within one spell),
renews the run's lock (a throttled run is alive and keeps it) and notes why it waits, so that
`status` says it. The rate is shared by all the run's workers through turns reserved on the
run (`Ledger.reserve_turn`): each batch takes the next free start time, one gap after the one
before, whatever worker it runs on (workers' clocks must agree, as NTP keeps them).
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from kgmigrate.errors import BackendError, KgmError
from kgmigrate.graph.base import GraphBackend
from kgmigrate.ledger import RunGate
from kgmigrate.ledger.lock import LockLostError
from kgmigrate.model.throttle import Throttle
from kgmigrate.runtime.context import Runtime

log = logging.getLogger("kgmigrate.workers")
SPELL_S = 2.0  # the longest nap between two looks at the run (at most half the watch's wait)
HEALTH_TIMEOUT_S = 10.0  # a health query that takes longer failed: the batch waits
# after a batch over the latency limit the next one waits twice that batch's time (at least
# LATENCY_WAIT_MIN_S, at most LATENCY_WAIT_MAX_S), then starts anyway: it measures again
LATENCY_WAIT_MIN_S, LATENCY_WAIT_MAX_S = 0.5, 60.0


@dataclass(frozen=True)
class Turn:
    """How a batch's wait ended: `held` (the run is paused or cancelled, or the batch was
    done by another delivery), `stop` (a critical limit: the run must stop, with this reason),
    or neither (start now). `throttle`: the limits the batch starts under."""

    waited_s: float
    throttle: Throttle
    held: RunGate | None = None
    stop: str | None = None


def wait_turn(rt: Runtime, run_id: str, batch_id: str, entities: Callable[[], int]) -> Turn:
    """Wait until the run's throttle lets this batch start (at once when it has none).
    `entities()`: how many entities the batch holds at most (asked only for an entity
    rate)."""
    return _Waiter(rt, run_id, batch_id).wait(entities)


class _Waiter:
    def __init__(self, rt: Runtime, run_id: str, batch_id: str) -> None:
        self.rt, self.run_id, self.batch_id = rt, run_id, batch_id
        self.began = self.counted = time.monotonic()
        self.noted = False
        self.latency_wait_until: float | None = None

    def wait(self, entities: Callable[[], int]) -> Turn:
        turn_taken = False  # after a wait for the rate's turn the other limits count again
        while True:
            gate = self.rt.ledger.batch_and_run(self.batch_id, self.run_id)
            throttle = gate.throttle
            if gate.holds:
                return self._end(throttle, held=gate)
            if throttle.is_empty:
                return self._end(throttle)
            health = health_value(self.rt.backend, throttle) if throttle.health_query else None
            stop = _critical(throttle, gate.latency_s, health)
            if stop is not None:
                return self._end(throttle, stop=stop)
            reason, until = self._why_wait(throttle, gate.latency_s, health)
            if reason is not None:
                self._nap(reason, until)
                continue
            gap = 0.0 if turn_taken else throttle.seconds_per_batch(
                entities() if throttle.max_rate else 0)
            if gap <= 0:
                return self._end(throttle)
            start = self.rt.ledger.reserve_turn(self.run_id, gap, time.time())
            turn_taken = self._until(start, throttle)

    def _why_wait(self, throttle: Throttle, latency_s: float | None,
                  health: float | str | None) -> tuple[str | None, float | None]:
        """Why the batch waits now (None: it need not), and until when (None: until the health
        query, asked again after a nap, says so). A last batch slower than the latency limit
        makes it wait once, twice that batch's time (bounded): then it runs, and its own time
        is the next batch's measure."""
        over_health = _over_health(throttle, health)
        if over_health is not None:
            return over_health, None
        if throttle.max_latency_s is None or latency_s is None \
                or latency_s <= throttle.max_latency_s:
            return None, None
        if self.latency_wait_until is None:
            self.latency_wait_until = time.monotonic() + min(
                max(2 * latency_s, LATENCY_WAIT_MIN_S), LATENCY_WAIT_MAX_S)
        if time.monotonic() >= self.latency_wait_until:
            return None, None
        return (f"the last batch took {latency_s:.2f}s, over the {throttle.max_latency_s:g}s "
                "limit"), self.latency_wait_until

    def _until(self, start: float, throttle: Throttle) -> bool:
        """Nap until `start` (a time.time()); False when the run's throttle changed meanwhile
        (the turn is taken again under the new one) or it was paused or cancelled."""
        while (left := start - time.time()) > 0:
            self._nap(f"rate limit, {throttle.describe_rate()}", time.monotonic() + left)
            gate = self.rt.ledger.batch_and_run(self.batch_id, self.run_id)
            if gate.holds or gate.throttle != throttle:
                return False
        return True

    def _nap(self, reason: str, until: float | None) -> None:
        """Sleep one spell (or until `until`, when sooner): short enough that the run's watch
        sees its throttled time move between two of its checks."""
        spell = min(SPELL_S, self.rt.settings.stall_after_s / 2)
        if until is not None:
            spell = min(spell, max(until - time.monotonic(), 0.01))
        self._count(reason)
        try:
            self.rt.lock.renew_for_run(self.run_id)
        except LockLostError:
            log.warning("run %s lost its lock while a batch waited for its throttle",
                        self.run_id)
        time.sleep(spell)

    def _end(self, throttle: Throttle, *, held: RunGate | None = None,
             stop: str | None = None) -> Turn:
        waited = 0.0
        if self.noted:  # the note is cleared: the run no longer waits for this batch
            self._count(None)
            waited = time.monotonic() - self.began
        return Turn(waited_s=waited, throttle=throttle, held=held, stop=stop)

    def _count(self, reason: str | None) -> None:
        """Add the time waited since the last count to the run's throttled time, with why it
        waits (None: it no longer does); `status` shows both as the run goes on."""
        now = time.monotonic()
        self.rt.ledger.note_throttled(self.run_id, reason, now - self.counted)
        self.counted, self.noted = now, True


def _critical(throttle: Throttle, latency_s: float | None, health: float | str | None
              ) -> str | None:
    """Why the run must stop now, if it must."""
    if throttle.critical_latency_s is not None and latency_s is not None \
            and latency_s > throttle.critical_latency_s:
        return (f"throttle: a batch took {latency_s:.2f}s, over the critical latency "
                f"{throttle.critical_latency_s:g}s")
    if throttle.critical_health is not None and isinstance(health, float) \
            and health > throttle.critical_health:
        return (f"throttle: health query `{throttle.health_query}` returned {health:g}, "
                f"over the critical {throttle.critical_health:g}")
    return None


def _over_health(throttle: Throttle, health: float | str | None) -> str | None:
    if isinstance(health, str):  # it failed: wait until it answers (the operator sees why)
        return f"health query `{throttle.health_query}` failed ({health}); waiting for it"
    if throttle.max_health is not None and health is not None and health > throttle.max_health:
        return (f"health query `{throttle.health_query}` returned {health:g}, over "
                f"{throttle.max_health:g}")
    return None


def health_value(backend: GraphBackend, throttle: Throttle) -> float | str:
    """The health query's number, read-only and bounded in time; what went wrong as text when
    it failed or returned anything else than one number. A batch waits then: a query that
    times out or fails on a busy server must not stop the run (`kgmigrate throttle` checks
    it when it is set)."""
    assert throttle.health_query is not None
    try:
        rows = backend.read(throttle.health_query, timeout=HEALTH_TIMEOUT_S).records
    except BackendError as exc:
        return str(exc)[:300]
    values = [v for row in rows for v in row.values()]
    if len(values) != 1 or isinstance(values[0], bool) \
            or not isinstance(values[0], int | float):
        return f"it must return one number, not {values[:3]!r}"
    return float(values[0])


def require_health_query(backend: GraphBackend, throttle: Throttle) -> None:
    """Refuse a health query that fails or does not return one number, in one line, before a
    run depends on it."""
    if throttle.health_query is None:
        return
    found = health_value(backend, throttle)
    if isinstance(found, str):
        raise KgmError(f"health query `{throttle.health_query}`: {found}; nothing was changed")
