"""Where each op's execution is registered, as Alembic's `Operations.implementation_for`.

Two tables: a library op *renders* to one of the raw ops (`BatchedCypher`, `RunCypher`) for a
dialect; a raw op (or an op that needs more than its rendering) *plans* to what the engine runs.
Ops stay plain data; the only place that looks at an op's class is here.
"""

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from kgmigrate.compile.plans import BatchPlan, Plan, Touches
from kgmigrate.errors import KgmError
from kgmigrate.ops import BatchedCypher, Operation, RunCypher

DIALECTS = ("falkordb", "neo4j")
Rendered = BatchedCypher | RunCypher

_renderers: dict[type[Operation], Callable[[Any, str], Rendered]] = {}
_planners: dict[type[Operation], Callable[[Any, str], Plan]] = {}
_touches: dict[type[Operation], Callable[[Any], Touches]] = {}


def implementation_for[F: Callable[..., Rendered]](op_class: type[Operation]
                                                   ) -> Callable[[F], F]:
    """Register how `op_class` renders to a raw op for a dialect: F(op, dialect)."""
    def register(render: F) -> F:
        _renderers[op_class] = render
        return render
    return register


def plan_for[F: Callable[..., Plan]](op_class: type[Operation]) -> Callable[[F], F]:
    """Register how `op_class` becomes what the engine runs: F(op, dialect)."""
    def register(plan: F) -> F:
        _planners[op_class] = plan
        return plan
    return register


def touches_for[F: Callable[..., Touches]](op_class: type[Operation]) -> Callable[[F], F]:
    """Register all that `op_class`'s `apply` changes on `e`: F(op) (see `Touches`). An op
    without one keeps whole entities in its undo rows."""
    def register(touches: F) -> F:
        _touches[op_class] = touches
        return touches
    return register


def require_dialect(dialect: str) -> str:
    if dialect not in DIALECTS:
        raise KgmError(f"unknown dialect {dialect!r}; use one of {', '.join(DIALECTS)}")
    return dialect


def render(op: Operation, dialect: str) -> Operation:
    """The raw op a library op renders to on `dialect` (a raw op: itself)."""
    renderer = _renderers.get(type(op))
    return renderer(op, require_dialect(dialect)) if renderer else op


def compile_op(op: Operation, dialect: str) -> Plan:
    """What the workers run for `op` on `dialect`."""
    plan = _plan(op, require_dialect(dialect))
    touches = _touches.get(type(op))
    if touches is not None and isinstance(plan, BatchPlan):
        return replace(plan, touches=touches(op))
    return plan


def sent_values(op: Operation, dialect: str) -> dict[str, Any]:
    """The values `op`'s plan sends as parameters, each named as the migration wrote it, so
    that a value a server cannot take is reported there: a rendering's own `op_value` is the
    op's field `value`, the migration's own `$x` is `parameter x`. (A Python transform's
    per-batch values exist only in the workers.)"""
    scope = compile_op(op, dialect).scope
    if scope is None:
        return {}
    declared = getattr(op, "params", {})
    named = {}
    for name, value in scope.params.items():
        field = name.removeprefix("op_")
        if name in declared:
            name = f"parameter {name}"
        elif field != name and hasattr(op, field):
            name = field
        named[name] = value
    return named


def _plan(op: Operation, dialect: str) -> Plan:
    planner = _planners.get(type(op))
    if planner is not None:
        return planner(op, dialect)
    raw = render(op, dialect)
    planner = _planners.get(type(raw))
    if planner is None:
        raise KgmError(f"{op.kind}: no implementation is registered for this operation")
    return planner(raw, dialect)
