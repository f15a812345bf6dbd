"""Value ops: change a property's type, transform it with a Cypher expression or a Python
callable run in the workers."""

import re
from dataclasses import dataclass

from kgmigrate.cypher import identifiers as ident
from kgmigrate.cypher.identifiers import ref
from kgmigrate.cypher.text import tokens
from kgmigrate.errors import KgmError
from kgmigrate.model.scope import Scope
from kgmigrate.ops.base import Operation
from kgmigrate.ops.library import UNDO_LOG_ONLY, OnEntities, all_of

CONVERSIONS = {"integer": "toInteger", "float": "toFloat", "string": "toString",
               "boolean": "toBoolean", "date": "date"}
# "{x} is a value of type {t}", per server (they share no type function)
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


@dataclass(frozen=True)
class ChangeType(OnEntities):
    """Convert `name` to `to` where it is not of that type yet; values that do not convert
    fail the batch (`on_error="fail"`, with their keys) or become absent (`"null"`, the undo
    log keeps them). A string that is not a date makes the server raise: the batch fails
    (without the keys) whatever the policy. The step's check proves every value in scope is
    now of the type (the one place rendering differs per dialect: they share no type test)."""

    name: str = ""
    to: str = "string"
    on_error: str = "fail"
    kind = "change_type"
    names = (("name", ident.Kind.PROPERTY),)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.to not in CONVERSIONS:
            raise KgmError(f"change_type: to={self.to!r}; use one of {', '.join(CONVERSIONS)}")
        if self.on_error not in ("fail", "null"):
            raise KgmError(f"change_type: on_error={self.on_error!r}; use 'fail' or 'null'")
        if self.to == "date" and self.on_error == "null":
            raise KgmError("change_type to date: both servers raise on a string that is not a "
                           "date (no null to keep), so only on_error='fail' applies; clean the "
                           "values first with transform_property if some are not dates")

    @property
    def description(self) -> str:
        return f"change {self.target}.{self.name} to {self.to} ({self.on_error} on error)"

    def scope(self) -> Scope:
        """As declared, for the record; each dialect's rendering narrows it to the values
        not of the type yet."""
        return Scope(self.entity, self.scope_name, all_of(self.where, f"{ref('e', self.name)} "
                                                          "IS NOT NULL"), dict(self.params))

    def reverse(self) -> Operation:
        self.irreversible(f"a conversion can lose what the old value was; {UNDO_LOG_ONLY}")


@dataclass(frozen=True)
class TransformProperty(OnEntities):
    """`name` = `expression` over its old value (`value`), e.g. "toUpper(trim(value))"; an
    `inverse` expression (over `value`, the new value) makes it reversible."""

    name: str = ""
    expression: str = ""
    inverse: str | None = None
    kind = "transform_property"
    names = (("name", ident.Kind.PROPERTY),)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_expression(self.expression)
        if self.inverse is not None:
            check_expression(self.inverse)

    @property
    def description(self) -> str:
        return f"set {self.target}.{self.name} = {self.expression}"

    def reverse(self) -> Operation:
        if self.inverse is None:
            self.irreversible(f"no inverse expression; {UNDO_LOG_ONLY}")
        return TransformProperty(**self.on_scope(), name=self.name, expression=self.inverse,
                                 inverse=self.expression)


@dataclass(frozen=True)
class PythonTransform(OnEntities):
    """`name` = `function(old value)` computed in the workers, batch by batch: where more
    workers pay off (text normalization, embeddings). `function` is an import path
    ("package.module:callable") every worker can import; with `vectorized=True` it takes the
    batch's list of old values and returns the list of new ones. A None result removes the
    property. Values must be JSON-able: a list of floats for an embedding is fine."""

    name: str = ""
    function: str = ""
    vectorized: bool = False
    kind = "python_transform"
    names = (("name", ident.Kind.PROPERTY),)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", self.function or ""):
            raise KgmError(f"python_transform: function={self.function!r}; give an import path "
                           "like 'package.module:callable'")

    @property
    def description(self) -> str:
        return f"set {self.target}.{self.name} = {self.function}(value)"

    def reverse(self) -> Operation:
        self.irreversible(f"no inverse function; {UNDO_LOG_ONLY}")
