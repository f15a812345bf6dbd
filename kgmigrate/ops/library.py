"""The operations library: named schema and data changes that render to the two execution forms.

Each op is a small frozen dataclass: it validates its names when built, says what it is
(`spec`, JSON in the ledger) and what undoes it (`reverse()`), and `render()`s itself to the form
the workers execute: a `BatchedCypher` (scope, apply, per-entity validation, step check, what the
undo log must know) or a `RunCypher` (one statement). Names pass through
`kgmigrate.identifiers`; values are parameters, never text.

Reversal: an op whose inverse needs data it destroyed (remove a property or a label) has none
here; a *failed* run of it is still rolled back exactly from the undo log, and a snapshot
covers a completed one.
"""

import importlib
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, cast

from kgmigrate import identifiers as ident
from kgmigrate.cypher_text import tokens
from kgmigrate.errors import KgmError
from kgmigrate.graph.base import GraphBackend
from kgmigrate.graph.types import RESERVED_PARAM_PREFIX, IndexSpec, Scope
from kgmigrate.ops.base import IrreversibleOperationError, Operation
from kgmigrate.ops.cypher import BatchedCypher, RunCypher

Rendered = BatchedCypher | RunCypher


def _check_params(params: dict[str, Any]) -> None:
    for name in params:
        ident.param_name(name)
        if name.startswith(RESERVED_PARAM_PREFIX):
            raise KgmError(f"parameter ${name}: the prefix {RESERVED_PARAM_PREFIX!r} is "
                           "reserved for kgmigrate")


def _ref(var: str, name: str) -> str:
    """`var.name` with the name through the one escaping function."""
    return f"{var}.{ident.prop(name)}"


def _labelled(var: str, name: str) -> str:
    """`var:Label` with the label through the one escaping function."""
    return f"{var}:{ident.label(name)}"


def _typed(var: str, name: str) -> str:
    """`var:TYPE` (inside a relationship pattern) through the one escaping function."""
    return f"{var}:{ident.rel_type(name)}"


def _and(*parts: str | None) -> str | None:
    present = [f"({p})" for p in parts if p]
    return " AND ".join(present) or None


class LibraryOp(Operation):
    """An op of the library: rendered to BatchedCypher or RunCypher for execution."""

    kind: ClassVar[str]

    def render(self) -> Rendered:
        raise NotImplementedError

    def scope(self) -> Scope | None:
        return self.render().scope()

    def spec(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload, no-any-return]


@dataclass(frozen=True)
class _OnEntities(LibraryOp):
    """Nodes with `label` or relationships of `rel_type`, narrowed by `where` (Cypher over `e`,
    with values in `params`)."""

    label: str | None = None
    rel_type: str | None = None
    where: str | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.label is None) == (self.rel_type is None):
            raise KgmError(f"{self.kind}: give exactly one of label or rel_type")
        if self.label is not None:
            ident.validate(self.label, ident.Kind.LABEL)
        else:
            ident.validate(self.rel_type, ident.Kind.REL_TYPE)
        _check_params(self.params)

    @property
    def entity(self) -> str:
        return "node" if self.label is not None else "relationship"

    @property
    def target(self) -> str:
        return f":{self.label}" if self.label is not None else f"[:{self.rel_type}]"

    def _at_least_planned(self, condition: str) -> str:
        """A step check: at least the planned number of entities in scope now meet
        `condition` (entities that met it before the step count too)."""
        pattern = (f"({_labelled('e', self.label)})" if self.label is not None else
                   f"()-[{_typed('e', str(self.rel_type))}]->()")
        where = _and(self.where, condition)
        return (f"MATCH {pattern} WHERE {where} WITH count(e) AS n "
                "RETURN n >= $kgm_planned AS valid")

    def _batched(self, apply: str, *, where: str | None = None, validation: str | None = None,
                 check: str | None = None, values: dict[str, Any] | None = None,
                 creates: str | None = None, deletes: bool = False) -> BatchedCypher:
        name = self.label if self.label is not None else self.rel_type
        assert name is not None
        return BatchedCypher("node" if self.label is not None else "relationship", name, apply,
                             _and(self.where, where), {**self.params, **(values or {})},
                             validation=validation, check=check, creates=creates,
                             deletes=deletes)


# -- properties -----------------------------------------------------------------------------


@dataclass(frozen=True)
class AddProperty(_OnEntities):
    """Set `name` to `value` (a parameter), or to `expression` computed from the entity's other
    properties (Cypher over `e`, checked like a transform), where the entity has no such
    property."""

    name: str = ""
    value: Any = None
    expression: str | None = None
    kind = "add_property"

    def __post_init__(self) -> None:
        super().__post_init__()
        ident.validate(self.name, ident.Kind.PROPERTY)
        if (self.value is None) == (self.expression is None):
            raise KgmError("add_property: give a default value or an expression (not both)")
        if self.expression is not None:
            check_expression(self.expression, variable="e")

    @property
    def description(self) -> str:
        default = self.expression if self.expression is not None else repr(self.value)
        return f"add {self.target}.{self.name} = {default} where absent"

    def render(self) -> BatchedCypher:
        ref = _ref("e", self.name)
        check = self._at_least_planned(f"{ref} IS NOT NULL")
        if self.expression is not None:
            return self._batched(f"SET {ref} = ({self.expression})", where=f"{ref} IS NULL",
                                 validation=f"{ref} IS NOT NULL", check=check)
        return self._batched(f"SET {ref} = $op_value", where=f"{ref} IS NULL",
                             validation=f"{ref} IS NOT NULL", values={"op_value": self.value},
                             check=check)

    def reverse(self) -> Operation:
        raise IrreversibleOperationError(
            f"{self.description}: which entities had the value before is not recorded; a failed "
            "run is rolled back from its undo log, a completed one needs a snapshot")


@dataclass(frozen=True)
class RemoveProperty(_OnEntities):
    name: str = ""
    kind = "remove_property"

    def __post_init__(self) -> None:
        super().__post_init__()
        ident.validate(self.name, ident.Kind.PROPERTY)

    @property
    def description(self) -> str:
        return f"remove {self.target}.{self.name}"

    def render(self) -> BatchedCypher:
        ref = _ref("e", self.name)
        return self._batched(f"REMOVE {ref}", where=f"{ref} IS NOT NULL",
                             validation=f"{ref} IS NULL")

    def reverse(self) -> Operation:
        raise IrreversibleOperationError(
            f"{self.description} drops data; a failed run is rolled back from its undo log, a "
            "completed one needs a snapshot (Migration(snapshot=True))")


@dataclass(frozen=True)
class RenameProperty(_OnEntities):
    old: str = ""
    new: str = ""
    kind = "rename_property"

    def __post_init__(self) -> None:
        super().__post_init__()
        ident.validate(self.old, ident.Kind.PROPERTY)
        ident.validate(self.new, ident.Kind.PROPERTY)
        if self.old == self.new:
            raise KgmError(f"rename_property: {self.old!r} to itself")

    @property
    def description(self) -> str:
        return f"rename {self.target}.{self.old} to {self.new}"

    def render(self) -> BatchedCypher:
        old, new = _ref("e", self.old), _ref("e", self.new)
        return self._batched(f"SET {new} = {old} REMOVE {old}", where=f"{old} IS NOT NULL",
                             validation=f"{old} IS NULL AND {new} IS NOT NULL")

    def reverse(self) -> Operation:
        return RenameProperty(self.label, self.rel_type, self.where, dict(self.params),
                              old=self.new, new=self.old)


@dataclass(frozen=True)
class CopyProperty(_OnEntities):
    source: str = ""
    target_name: str = ""
    kind = "copy_property"

    def __post_init__(self) -> None:
        super().__post_init__()
        ident.validate(self.source, ident.Kind.PROPERTY)
        ident.validate(self.target_name, ident.Kind.PROPERTY)

    @property
    def description(self) -> str:
        return f"copy {self.target}.{self.source} to {self.target_name}"

    def render(self) -> BatchedCypher:
        src, dst = _ref("e", self.source), _ref("e", self.target_name)
        return self._batched(f"SET {dst} = {src}", where=f"{src} IS NOT NULL",
                             validation=f"{dst} = {src}")

    def reverse(self) -> Operation:
        return RemoveProperty(self.label, self.rel_type, self.where, dict(self.params),
                              name=self.target_name)


# -- labels ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class AddLabel(_OnEntities):
    """Add `name` to nodes with `label` (and `where`)."""

    name: str = ""
    kind = "add_label"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.label is None:
            raise KgmError("add_label works on nodes (give label=...)")
        ident.validate(self.name, ident.Kind.LABEL)

    @property
    def description(self) -> str:
        return f"add label :{self.name} to {self.target}"

    def render(self) -> BatchedCypher:
        has = _labelled("e", self.name)
        return self._batched(f"SET {has}", where=f"NOT {has}", validation=has)

    def reverse(self) -> Operation:
        return RemoveLabel(self.name, None, self.where, dict(self.params), name=self.name)


@dataclass(frozen=True)
class RemoveLabel(_OnEntities):
    """Remove label `name` from nodes with `label` (`label` may be `name` itself)."""

    name: str = ""
    kind = "remove_label"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.label is None:
            raise KgmError("remove_label works on nodes (give label=...)")
        ident.validate(self.name, ident.Kind.LABEL)

    @property
    def description(self) -> str:
        return f"remove label :{self.name} from {self.target}"

    def render(self) -> BatchedCypher:
        has = _labelled("e", self.name)
        return self._batched(f"REMOVE {has}", where=has, validation=f"NOT {has}")

    def reverse(self) -> Operation:
        if self.label == self.name:
            raise IrreversibleOperationError(
                f"{self.description}: once removed, the nodes cannot be found by it again")
        assert self.label is not None
        return AddLabel(self.label, None, self.where, dict(self.params), name=self.name)


@dataclass(frozen=True)
class RenameLabel(_OnEntities):
    """Nodes with `label` get label `new` instead."""

    new: str = ""
    kind = "rename_label"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.label is None:
            raise KgmError("rename_label works on nodes (give label=...)")
        ident.validate(self.new, ident.Kind.LABEL)
        if self.new == self.label:
            raise KgmError(f"rename_label: {self.label!r} to itself")

    @property
    def description(self) -> str:
        return f"rename label :{self.label} to :{self.new}"

    def render(self) -> BatchedCypher:
        assert self.label is not None
        old, new = _labelled("e", self.label), _labelled("e", self.new)
        return self._batched(f"SET {new} REMOVE {old}", validation=f"{new} AND NOT {old}",
                             check=f"MATCH ({old}) RETURN count(e) = 0 AS valid")

    def reverse(self) -> Operation:
        assert self.label is not None
        return RenameLabel(self.new, None, self.where, dict(self.params), new=self.label)


# -- relationships --------------------------------------------------------------------------


@dataclass(frozen=True)
class RetypeRelationship(_OnEntities):
    """The ticket's `modify_relationship`: same endpoints and properties, type `new`."""

    new: str = ""
    kind = "retype_relationship"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.rel_type is None:
            raise KgmError("retype_relationship works on relationships (give rel_type=...)")
        ident.validate(self.new, ident.Kind.REL_TYPE)
        if self.new == self.rel_type:
            raise KgmError(f"retype_relationship: {self.rel_type!r} to itself")

    @property
    def description(self) -> str:
        return f"retype [:{self.rel_type}] to [:{self.new}]"

    def render(self) -> BatchedCypher:
        assert self.rel_type is not None
        old, new = _typed("o", self.rel_type), _typed("n", self.new)
        return self._batched(
            f"CREATE (s)-[{_typed('op_r', self.new)}]->(t) SET op_r = properties(e) DELETE e",
            creates="op_r", deletes=True,
            # (FalkorDB returns null for an expression mixing a grouping key and an aggregate)
            check=(f"MATCH ()-[{old}]->() WITH count(o) AS remaining "
                   f"MATCH ()-[{new}]->() WITH remaining, count(n) AS made "
                   "RETURN remaining = 0 AND made >= $kgm_planned AS valid")
            if self.where is None else None)

    def reverse(self) -> Operation:
        assert self.rel_type is not None
        return RetypeRelationship(None, self.new, self.where, dict(self.params),
                                  new=self.rel_type)


@dataclass(frozen=True)
class InvertRelationship(_OnEntities):
    """Swap the direction of relationships, keeping type and properties."""

    kind = "invert_relationship"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.rel_type is None:
            raise KgmError("invert_relationship works on relationships (give rel_type=...)")

    @property
    def description(self) -> str:
        return f"invert [:{self.rel_type}]"

    def render(self) -> BatchedCypher:
        rel = _typed("op_r", str(self.rel_type))
        return self._batched(f"CREATE (t)-[{rel}]->(s) SET op_r = properties(e) DELETE e",
                             creates="op_r", deletes=True)

    def reverse(self) -> Operation:
        raise IrreversibleOperationError(
            f"{self.description}: inverted relationships cannot be told from others of the "
            "type; invert them again with a `where` that selects them")


# -- schema (unbatched) ---------------------------------------------------------------------


@dataclass(frozen=True)
class CreateIndex(LibraryOp):
    """A range index (or, `unique=True`, a uniqueness constraint), idempotent."""

    label: str | None = None
    rel_type: str | None = None
    properties: tuple[str, ...] = ()
    unique: bool = False
    drop: bool = False
    kind = "index"

    def __post_init__(self) -> None:
        if (self.label is None) == (self.rel_type is None):
            raise KgmError("index: give exactly one of label or rel_type")
        if not self.properties:
            raise KgmError("index: name at least one property")
        object.__setattr__(self, "properties", tuple(self.properties))
        if self.label is not None:
            ident.validate(self.label, ident.Kind.LABEL)
        else:
            ident.validate(self.rel_type, ident.Kind.REL_TYPE)
        for name in self.properties:
            ident.validate(name, ident.Kind.PROPERTY)

    def index_spec(self) -> IndexSpec:
        if self.label is not None:
            return IndexSpec("node", self.label, self.properties, unique=self.unique)
        assert self.rel_type is not None
        return IndexSpec("relationship", self.rel_type, self.properties, unique=self.unique)

    @property
    def description(self) -> str:
        what = "uniqueness constraint" if self.unique else "index"
        on = f":{self.label}" if self.label else f"[:{self.rel_type}]"
        return f"{'drop' if self.drop else 'create'} {what} on {on}({', '.join(self.properties)})"

    def render(self) -> RunCypher:
        raise TypeError("index ops run through the backend's ensure_index / drop_index "
                        "(their DDL differs per server), not as a Cypher text")

    def scope(self) -> Scope | None:
        return None

    def apply_to(self, backend: GraphBackend) -> bool:
        """Idempotent: True when something changed."""
        spec = self.index_spec()
        return backend.drop_index(spec) if self.drop else backend.ensure_index(spec)

    def reverse(self) -> Operation:
        return CreateIndex(self.label, self.rel_type, self.properties, self.unique,
                           not self.drop)


def executable(op: Operation) -> Operation:
    """What the workers run for `op`: a library op's rendering, index ops and raw ops as they
    are."""
    if isinstance(op, LibraryOp) and not isinstance(op, CreateIndex):
        return op.render()
    return op


# -- types and transforms -------------------------------------------------------------------

CONVERSIONS = {"integer": "toInteger", "float": "toFloat", "string": "toString",
               "boolean": "toBoolean", "date": "date"}
CLAUSES = frozenset({
    "MATCH", "OPTIONAL", "CREATE", "MERGE", "DELETE", "DETACH", "SET", "REMOVE", "CALL", "WITH",
    "RETURN", "UNWIND", "FOREACH", "LOAD", "USE", "UNION", "ORDER", "LIMIT", "SKIP", "YIELD",
    "DROP", "ALTER", "GRANT", "DENY", "REVOKE", "SHOW", "START", "STOP", "TERMINATE", "FINISH",
    "INSERT",
})
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def check_expression(expression: str, variable: str = "value") -> str:
    """An expression over `variable`, refused when it could be more than an expression: a
    clause keyword, a comment, `;`, or unbalanced brackets. Returns it with `variable` bound
    as `e`'s property by the caller (see `bind`)."""
    depth = 0
    for kind, chunk in tokens(expression):
        if kind in ("comment", "end"):
            raise KgmError(f"transform expression {expression!r}: comments and `;` are not "
                           "allowed in an expression")
        if kind != "code":
            continue
        for word in _WORD.findall(chunk):
            if word.upper() in CLAUSES:
                raise KgmError(f"transform expression {expression!r}: `{word}` is a clause, "
                               "not part of an expression")
        for ch in chunk:
            depth += ch in "([{"
            depth -= ch in ")]}"
            if depth < 0:
                break
        if depth < 0:
            break
    if depth != 0:
        raise KgmError(f"transform expression {expression!r}: unbalanced brackets")
    if not any(variable in _WORD.findall(c) for k, c in tokens(expression) if k == "code"):
        raise KgmError(f"transform expression {expression!r} does not use `{variable}`")
    return expression


def bind(expression: str, variable: str, replacement: str) -> str:
    """`variable` (a whole word outside quotes, not a property or parameter) -> replacement."""
    out = []
    for kind, chunk in tokens(expression):
        if kind == "code":
            chunk = re.sub(rf"(?<![.$\w]){re.escape(variable)}(?!\w)", replacement, chunk)
        out.append(chunk)
    return "".join(out)


def _replace_value(ref: str, expression: str) -> str:
    """Set `ref` (`e.<prop>`) to `expression` (computed from the old value first), letting its
    type change: on FalkorDB `SET e.p = toFloat(e.p)` (and `SET e += {p: ...}`) keep an Integer
    an Integer; removing the property first does not."""
    return f"FOREACH (op_v IN [{expression}] | REMOVE {ref} SET {ref} = op_v)"


@dataclass(frozen=True)
class ChangeType(_OnEntities):
    """Convert `name` to `to`; values that do not convert fail the batch (`on_error="fail"`,
    with their keys) or become absent (`"null"`, the undo log keeps them)."""

    name: str = ""
    to: str = "string"
    on_error: str = "fail"
    kind = "change_type"

    def __post_init__(self) -> None:
        super().__post_init__()
        ident.validate(self.name, ident.Kind.PROPERTY)
        if self.to not in CONVERSIONS:
            raise KgmError(f"change_type: to={self.to!r}; use one of {', '.join(CONVERSIONS)}")
        if self.on_error not in ("fail", "null"):
            raise KgmError(f"change_type: on_error={self.on_error!r}; use 'fail' or 'null'")

    @property
    def description(self) -> str:
        return f"change {self.target}.{self.name} to {self.to} ({self.on_error} on error)"

    def render(self) -> BatchedCypher:
        ref = _ref("e", self.name)
        return self._batched(_replace_value(ref, f"{CONVERSIONS[self.to]}({ref})"),
                             where=f"{ref} IS NOT NULL",
                             validation=f"{ref} IS NOT NULL" if self.on_error == "fail" else None)

    def reverse(self) -> Operation:
        raise IrreversibleOperationError(
            f"{self.description}: a conversion can lose what the old value was; a failed run "
            "is rolled back from its undo log, a completed one needs a snapshot")


@dataclass(frozen=True)
class TransformProperty(_OnEntities):
    """`name` = `expression` over its old value (`value`), e.g. "toUpper(trim(value))"; an
    `inverse` expression (over `value`, the new value) makes it reversible."""

    name: str = ""
    expression: str = ""
    inverse: str | None = None
    kind = "transform_property"

    def __post_init__(self) -> None:
        super().__post_init__()
        ident.validate(self.name, ident.Kind.PROPERTY)
        check_expression(self.expression)
        if self.inverse is not None:
            check_expression(self.inverse)

    @property
    def description(self) -> str:
        return f"set {self.target}.{self.name} = {self.expression}"

    def render(self) -> BatchedCypher:
        ref = _ref("e", self.name)
        return self._batched(_replace_value(ref, bind(self.expression, "value", ref)),
                             where=f"{ref} IS NOT NULL")

    def reverse(self) -> Operation:
        if self.inverse is None:
            raise IrreversibleOperationError(
                f"{self.description}: no inverse expression; a failed run is rolled back from "
                "its undo log")
        return TransformProperty(self.label, self.rel_type, self.where, dict(self.params),
                                 name=self.name, expression=self.inverse,
                                 inverse=self.expression)


@dataclass(frozen=True)
class PythonTransform(_OnEntities):
    """`name` = `function(old value)` computed in the workers, batch by batch: where more
    workers pay off (text normalization, embeddings). `function` is an import path
    ("package.module:callable") every worker can import; with `vectorized=True` it takes the
    batch's list of old values and returns the list of new ones. A None result removes the
    property. Values must be JSON-able: a list of floats for an embedding is fine."""

    name: str = ""
    function: str = ""
    vectorized: bool = False
    kind = "python_transform"

    def __post_init__(self) -> None:
        super().__post_init__()
        ident.validate(self.name, ident.Kind.PROPERTY)
        if not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", self.function or ""):
            raise KgmError(f"python_transform: function={self.function!r}; give an import path "
                           "like 'package.module:callable'")

    @property
    def description(self) -> str:
        return f"set {self.target}.{self.name} = {self.function}(value)"

    def render(self) -> BatchedCypher:
        """The new values arrive per batch as parameters keyed by entity key, with the state
        each was computed from: an entity changed since its capture is left alone (and its
        old value was never read into the computation)."""
        ref = _ref("e", self.name)
        lookup = "toString(kgm_key)"
        return self._batched(
            f"FOREACH (op_v IN CASE WHEN kgm_pre = $op_sigs[{lookup}] "
            f"THEN [$op_values[{lookup}]] ELSE [] END | REMOVE {ref} SET {ref} = op_v)",
            where=f"{ref} IS NOT NULL")

    def load(self) -> Callable[[Any], Any]:
        module, _, attr = self.function.partition(":")
        try:
            found = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise KgmError(f"python_transform: cannot import {self.function}: {exc}") from None
        if not callable(found):
            raise KgmError(f"python_transform: {self.function} is not callable")
        return cast(Callable[[Any], Any], found)

    def batch_values(self, states: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """The parameters one batch needs, computed from its captured (exact) states."""
        function = self.load()
        olds = [state["p"].get(self.name) for state in states]
        try:
            news = function(olds) if self.vectorized else [function(v) for v in olds]
        except Exception as exc:  # user code: report it as this batch's failure
            raise KgmError(f"python_transform {self.function} raised "
                           f"{type(exc).__name__}: {exc}") from None
        if len(news) != len(olds):
            raise KgmError(f"python_transform {self.function} returned {len(news)} values for "
                           f"{len(olds)}")
        keys = [str(state["k"]) for state in states]
        return {"op_values": dict(zip(keys, news, strict=True)),
                "op_sigs": {k: state["sig"] for k, state in zip(keys, states, strict=True)}}

    def reverse(self) -> Operation:
        raise IrreversibleOperationError(
            f"{self.description}: no inverse function; a failed run is rolled back from its "
            "undo log, a completed one needs a snapshot")
