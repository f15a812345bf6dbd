"""How the value ops render; a Python transform also computes its values per batch."""

import importlib
import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any, cast

from kgmigrate.compile.library import batched_on, proof_on
from kgmigrate.compile.plans import BatchPlan, Touches
from kgmigrate.compile.raw import batched_cypher
from kgmigrate.compile.registry import implementation_for, plan_for, touches_for
from kgmigrate.cypher.identifiers import ref
from kgmigrate.cypher.text import tokens
from kgmigrate.errors import KgmError
from kgmigrate.model.state import StateRows
from kgmigrate.ops import BatchedCypher, ChangeType, PythonTransform, TransformProperty
from kgmigrate.ops.transforms import CONVERSIONS

# "{x} is a value of type {t}", per server (they share no type function)
TYPE_TESTS = {"falkordb": "typeOf({x}) = '{t}'", "neo4j": "{x} IS :: {t}"}
TYPE_NAMES = {"falkordb": {"integer": "Integer", "float": "Float", "string": "String",
                           "boolean": "Boolean", "date": "Date"},
              "neo4j": {"integer": "INTEGER", "float": "FLOAT", "string": "STRING",
                        "boolean": "BOOLEAN", "date": "DATE"}}


def is_of_type(dialect: str, expression: str, to: str) -> str:
    return TYPE_TESTS[dialect].format(x=expression, t=TYPE_NAMES[dialect][to])


def bind(expression: str, variable: str, replacement: str) -> str:
    """`variable` (a whole word outside quotes, not a property or parameter) -> replacement."""
    out = []
    for kind, chunk in tokens(expression):
        if kind == "code":
            chunk = re.sub(rf"(?<![.$\w]){re.escape(variable)}(?!\w)", replacement, chunk)
        out.append(chunk)
    return "".join(out)


def _replace_value(prop: str, expression: str) -> str:
    """Set `prop` (`e.<name>`) to `expression` (computed from the old value first), letting its
    type change: on FalkorDB `SET e.p = toFloat(e.p)` (and `SET e += {p: ...}`) keep an Integer
    an Integer; removing the property first does not."""
    return f"FOREACH (op_v IN [{expression}] | REMOVE {prop} SET {prop} = op_v)"


@implementation_for(ChangeType)
def change_type(op: ChangeType, dialect: str) -> BatchedCypher:
    """The one rendering that differs per dialect: the servers share no type test."""
    prop = ref("e", op.name)
    unconverted = f"{prop} IS NOT NULL AND NOT ({is_of_type(dialect, prop, op.to)})"
    return batched_on(op, _replace_value(prop, f"{CONVERSIONS[op.to]}({prop})"),
                      where=unconverted,
                      validation=f"{prop} IS NOT NULL" if op.on_error == "fail" else None,
                      check=proof_on(op, none=unconverted))


@implementation_for(TransformProperty)
def transform_property(op: TransformProperty, dialect: str) -> BatchedCypher:
    prop = ref("e", op.name)
    return batched_on(op, _replace_value(prop, bind(op.expression, "value", prop)),
                      where=f"{prop} IS NOT NULL")


# `kgm_pre` (kgmigrate.ledger.undo.bound) is the state the capture's signature was taken of:
# FalkorDB's signature is its JSON text; Neo4j's holds the exact properties (labels sorted)
SAME_AS_CAPTURED = {"falkordb": "toJSON(kgm_pre) = $op_sigs[{}]",
                    "neo4j": "kgm_pre[1] = $op_sigs[{}][1]"}


@implementation_for(PythonTransform)
def python_transform(op: PythonTransform, dialect: str) -> BatchedCypher:
    """The new values arrive per batch as parameters keyed by entity key, with the state
    each was computed from: an entity changed since its capture is left alone (and its
    old value was never read into the computation)."""
    prop = ref("e", op.name)
    lookup = "toString(kgm_key)"
    return batched_on(
        op, f"FOREACH (op_v IN CASE WHEN {SAME_AS_CAPTURED[dialect].format(lookup)} "
        f"THEN [$op_values[{lookup}]] ELSE [] END | REMOVE {prop} SET {prop} = op_v)",
        where=f"{prop} IS NOT NULL")


@plan_for(PythonTransform)
def python_transform_plan(op: PythonTransform, dialect: str) -> BatchPlan:
    return replace(batched_cypher(python_transform(op, dialect), dialect),
                   values=lambda states: batch_values(op, states))


def load(op: PythonTransform) -> Callable[[Any], Any]:
    module, _, attr = op.function.partition(":")
    try:
        found = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise KgmError(f"python_transform: cannot import {op.function}: {exc}") from None
    if not callable(found):
        raise KgmError(f"python_transform: {op.function} is not callable")
    return cast(Callable[[Any], Any], found)


def batch_values(op: PythonTransform, states: StateRows) -> dict[str, Any]:
    """The parameters one batch needs, computed from its captured (exact) states."""
    function = load(op)
    olds = [state["p"].get(op.name) for state in states]
    try:
        news = function(olds) if op.vectorized else [function(v) for v in olds]
    except Exception as exc:  # user code: report it as this batch's failure
        raise KgmError(f"python_transform {op.function} raised "
                       f"{type(exc).__name__}: {exc}") from None
    if len(news) != len(olds):
        raise KgmError(f"python_transform {op.function} returned {len(news)} values for "
                       f"{len(olds)}")
    keys = [str(state["k"]) for state in states]
    return {"op_values": dict(zip(keys, news, strict=True)),
            "op_sigs": {k: state["sig"] for k, state in zip(keys, states, strict=True)}}


@touches_for(ChangeType)
@touches_for(TransformProperty)
@touches_for(PythonTransform)
def transformed(op: ChangeType | TransformProperty | PythonTransform) -> Touches:
    return Touches(properties=(op.name,))
