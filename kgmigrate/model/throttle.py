"""A run's throttle: the limits an operator sets so that a migration shares the graph with the
applications that use it (gh-ost's `max-load` / `critical-load` for a graph).

It is kept on the run (JSON) and read by every batch before it starts, so a change made while
the run goes on (`kgmigrate throttle RUN ...`) reaches the next batch of every worker. Three
kinds of limit:

- a rate: entities or batches per second, over all the run's workers together;
- the batch statements' latency (the last committed batch's time): above `max_latency_s` the
  next batch waits, above `critical_latency_s` the run stops as on a failure;
- a health query: any read-only query returning one number (e.g. the server's active
  transactions), asked before a batch starts: above `max_health` the batch waits, above
  `critical_health` the run stops.
"""

import math
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from kgmigrate.errors import KgmError

# Neo4j's transactions running now, this migration's included (5.x; Community too).
ACTIVE_TRANSACTIONS = "SHOW TRANSACTIONS YIELD transactionId RETURN count(*) AS n"

LIMITS = ("max_rate", "max_batch_rate", "max_latency_s", "critical_latency_s", "health_query",
          "max_health", "critical_health")


class Throttle(BaseModel):
    """What limits a run; every limit is optional (an empty throttle limits nothing)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_rate: float | None = Field(default=None, gt=0)  # entities per second, at most
    max_batch_rate: float | None = Field(default=None, gt=0)  # batches per second, at most
    max_latency_s: float | None = Field(default=None, gt=0)  # the next batch waits above it
    critical_latency_s: float | None = Field(default=None, gt=0)  # the run stops above it
    health_query: str | None = Field(default=None, min_length=1)  # read-only, one number
    max_health: float | None = None  # batches wait while the health query returns more
    critical_health: float | None = None  # the run stops when it returns more

    @model_validator(mode="after")
    def _finite(self) -> Self:
        for name in LIMITS:
            value = getattr(self, name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number")
        return self

    def require_consistent(self) -> Self:
        """The throttle, when its limits make sense together (a change of some limits need
        not: it is checked once merged with the run's others); else a one-line KgmError."""
        if (self.max_health is not None or self.critical_health is not None) \
                and self.health_query is None:
            raise KgmError("throttle: a health limit needs a health query (--health-query, "
                           "or --max-active-transactions on Neo4j)")
        if self.health_query is not None and self.max_health is None \
                and self.critical_health is None:
            raise KgmError("throttle: a health query needs a limit (--max-health or "
                           "--critical-health)")
        for wait, stop in (("max_latency_s", "critical_latency_s"),
                           ("max_health", "critical_health")):
            low, high = getattr(self, wait), getattr(self, stop)
            if low is not None and high is not None and high < low:
                raise KgmError(f"throttle: {stop} ({high:g}) is below {wait} ({low:g}): the "
                               "run would stop before it ever waited")
        return self

    @property
    def is_empty(self) -> bool:
        return all(getattr(self, name) is None for name in LIMITS)

    @property
    def watches_latency(self) -> bool:
        """Whether a batch's time is a limit, so each batch records it for the next."""
        return self.max_latency_s is not None or self.critical_latency_s is not None

    def merged(self, change: "Throttle", *, cleared: tuple[str, ...] = ()) -> "Throttle":
        """This throttle with `cleared` limits removed, then `change`'s limits set; checked
        whole. A new health query drops the old one's levels (they measured another thing)
        unless the change gives them."""
        unknown = sorted(set(cleared) - set(LIMITS))
        if unknown:
            raise KgmError(f"no limit {', '.join(unknown)} to clear; the limits are "
                           f"{', '.join(LIMITS)}")
        if change.health_query not in (None, self.health_query):
            cleared = (*cleared, "max_health", "critical_health")
        kept = {k: v for k, v in self.model_dump().items() if k not in cleared}
        return checked({**kept, **change.model_dump(exclude_none=True)}).require_consistent()

    def seconds_per_batch(self, batch_size: int) -> float:
        """The least time between two batches' starts under the rate limits (0: none)."""
        gaps = [0.0]
        if self.max_batch_rate:
            gaps.append(1 / self.max_batch_rate)
        if self.max_rate:
            gaps.append(batch_size / self.max_rate)
        return max(gaps)

    def describe_rate(self) -> str:
        """`at most 500 entities/s`, `at most 500 entities/s and 2 batches/s`."""
        rates = [f"{rate:g} {unit}/s" for rate, unit in ((self.max_rate, "entities"),
                                                          (self.max_batch_rate, "batches"))
                 if rate is not None]
        return f"at most {' and '.join(rates)}" if rates else ""

    def describe(self) -> str:
        """`at most 500 entities/s; wait while a batch takes over 2s; ...`."""
        parts = [self.describe_rate()] if self.describe_rate() else []
        if self.max_latency_s is not None:
            parts.append(f"wait while a batch takes over {self.max_latency_s:g}s")
        if self.critical_latency_s is not None:
            parts.append(f"stop when a batch takes over {self.critical_latency_s:g}s")
        if self.health_query is not None:
            limits = [f"wait over {self.max_health:g}" if self.max_health is not None else "",
                      f"stop over {self.critical_health:g}"
                      if self.critical_health is not None else ""]
            parts.append(f"health `{self.health_query}`: {', '.join(p for p in limits if p)}")
        return "; ".join(parts) or "no limits"


def checked(fields: dict[str, object]) -> Throttle:
    """A throttle (or a change of one) from user input: a clear error, not a stack trace, for
    a limit that makes no sense by itself (see `require_consistent` for the rest)."""
    try:
        return Throttle.model_validate(fields)
    except ValidationError as exc:
        text = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'limits'}: "
                         f"{e['msg'].removeprefix('Value error, ')}" for e in exc.errors())
        raise KgmError(f"throttle: {text}") from None
