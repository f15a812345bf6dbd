"""The throttle's command-line options, declared once for every command that takes them
(`upgrade`, `downgrade`, `throttle`), and the `Throttle` they ask for."""

import functools
import inspect
from collections.abc import Callable
from typing import Annotated, Any

import typer

from kgmigrate.errors import KgmError
from kgmigrate.model.throttle import ACTIVE_TRANSACTIONS, Throttle, checked

NO_LIMITS = Throttle()  # a decorated command's `limits` before the options replace it

# (parameter, its type and option), in the order `--help` lists them
OPTIONS: tuple[tuple[str, Any], ...] = (
    ("max_rate", Annotated[float | None, typer.Option(
        "--max-rate", help="Throttle: at most this many entities per second, over all "
        "workers.")]),
    ("max_batch_rate", Annotated[float | None, typer.Option(
        "--max-batch-rate", help="Throttle: at most this many batches per second.")]),
    ("max_latency", Annotated[float | None, typer.Option(
        "--max-latency", help="Throttle: seconds; after a batch that took longer the next "
        "waits (twice that batch's time), then measures again.")]),
    ("critical_latency", Annotated[float | None, typer.Option(
        "--critical-latency", help="Throttle: seconds; a batch that took longer stops the run "
        "as a failure does (rolled back).")]),
    ("health_query", Annotated[str | None, typer.Option(
        "--health-query", help="Throttle: a read-only query returning one number, asked "
        "before each batch (with --max-health / --critical-health).")]),
    ("max_health", Annotated[float | None, typer.Option(
        "--max-health", help="Throttle: batches wait while the health query returns more.")]),
    ("critical_health", Annotated[float | None, typer.Option(
        "--critical-health", help="Throttle: the run stops (rolled back) when the health query "
        "returns more.")]),
    ("max_active_transactions", Annotated[int | None, typer.Option(
        "--max-active-transactions", min=1, metavar="N", help="Throttle (Neo4j): batches wait "
        "while the server runs more transactions than this (a health query of SHOW "
        "TRANSACTIONS).")]),
)


def throttle_options(command: Callable[..., None]) -> Callable[..., None]:
    """Gives a command the throttle's options in place of its `limits` parameter, and calls
    it with the `Throttle` they ask for (empty when none is given). Typer reads a command's
    parameters from its signature, so the options are spliced into the signature it sees."""
    signature = inspect.signature(command)
    parameters: list[inspect.Parameter] = []
    for parameter in signature.parameters.values():
        if parameter.name != "limits":
            parameters.append(parameter)
            continue
        parameters += [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                         annotation=annotation, default=None)
                       for name, annotation in OPTIONS]
    if len(parameters) == len(signature.parameters):
        raise TypeError(f"{command.__name__} has no `limits` parameter")

    @functools.wraps(command)
    def with_limits(**given: Any) -> None:
        asked = {name: given.pop(name) for name, _ in OPTIONS}
        command(limits=throttle_from(**asked), **given)

    with_limits.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=parameters)
    with_limits.__annotations__ = {p.name: p.annotation for p in parameters}
    return with_limits


def throttle_from(max_rate: float | None = None, max_batch_rate: float | None = None,
                  max_latency: float | None = None, critical_latency: float | None = None,
                  health_query: str | None = None, max_health: float | None = None,
                  critical_health: float | None = None,
                  max_active_transactions: int | None = None) -> Throttle:
    """The throttle the options ask for (clear errors for what makes no sense)."""
    if max_active_transactions is not None:
        if health_query is not None or max_health is not None:
            raise KgmError("--max-active-transactions is a health query of its own: give it "
                           "or --health-query with --max-health, not both")
        health_query, max_health = ACTIVE_TRANSACTIONS, max_active_transactions
    return checked({"max_rate": max_rate, "max_batch_rate": max_batch_rate,
                    "max_latency_s": max_latency, "critical_latency_s": critical_latency,
                    "health_query": health_query, "max_health": max_health,
                    "critical_health": critical_health})


# `--clear` names a limit as its option does; --max-active-transactions lifts the health limit
CLEARABLE = {"max-rate": ("max_rate",), "max-batch-rate": ("max_batch_rate",),
             "max-latency": ("max_latency_s",), "critical-latency": ("critical_latency_s",),
             "health-query": ("health_query", "max_health", "critical_health"),
             "max-health": ("max_health",), "critical-health": ("critical_health",),
             "max-active-transactions": ("health_query", "max_health", "critical_health")}


def cleared_limits(names: list[str]) -> tuple[str, ...]:
    """The throttle's fields that `--clear NAME ...` lifts."""
    fields: list[str] = []
    for name in names:
        key = name.strip().removeprefix("--").replace("_", "-")
        if key not in CLEARABLE:
            raise KgmError(f"--clear {name}: no such limit; one of {', '.join(CLEARABLE)}")
        fields += CLEARABLE[key]
    return tuple(dict.fromkeys(fields))
