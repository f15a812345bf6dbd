"""The one place where names become Cypher.

Labels, relationship types and property keys cannot be query parameters, so every piece of code
that renders Cypher passes names through `quote()`. Values never come here: they are parameters.

Policy (documented in docs/identifiers.md):

* A name is always wrapped in backticks, so spaces, punctuation, keywords and unicode are fine.
* A name containing a backtick is **refused**, not escaped. Neo4j accepts a doubled backtick but
  FalkorDB rejects it as a syntax error, and a migration must mean the same on both servers.
* Empty names, control characters (including NUL and newlines: NUL has crashed FalkorDB servers),
  surrogates and names longer than `MAX_LENGTH` characters are refused.
* Names starting with `RESERVED_PREFIX` belong to kgmigrate's own bookkeeping and are refused for
  user data unless the caller is the ledger (`internal=True`).
"""

import re
import unicodedata
from enum import StrEnum

from kgmigrate.errors import IdentifierError

MAX_LENGTH = 255
RESERVED_PREFIX = "__KGM"
_REFUSED_CATEGORIES = {"Cc", "Cs", "Co", "Cn"}  # control, surrogate, private use, unassigned
_PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


class Kind(StrEnum):
    LABEL = "label"
    REL_TYPE = "relationship type"
    PROPERTY = "property key"
    INDEX = "index name"


def validate(name: object, kind: Kind = Kind.PROPERTY, *, internal: bool = False) -> str:
    """Return `name` unchanged if it is safe to use as a `kind`, else raise IdentifierError."""
    if not isinstance(name, str):
        raise IdentifierError(f"{kind} must be a string, got {type(name).__name__}")
    if not name:
        raise IdentifierError(f"{kind} must not be empty")
    if len(name) > MAX_LENGTH:
        raise IdentifierError(f"{kind} {name[:40]!r}... is longer than {MAX_LENGTH} characters")
    if "`" in name:
        raise IdentifierError(
            f"{kind} {name!r} contains a backtick, which kgmigrate refuses "
            "(FalkorDB cannot parse an escaped backtick)"
        )
    for ch in name:
        if unicodedata.category(ch) in _REFUSED_CATEGORIES:
            raise IdentifierError(
                f"{kind} {name!r} contains the control or unassigned character U+{ord(ch):04X}"
            )
    if not internal and name.startswith(RESERVED_PREFIX):
        raise IdentifierError(
            f"{kind} {name!r} starts with {RESERVED_PREFIX!r}, reserved for kgmigrate's ledger"
        )
    return name


def quote(name: object, kind: Kind = Kind.PROPERTY, *, internal: bool = False) -> str:
    """Validate `name` and return it backtick-quoted, ready to paste into Cypher."""
    return f"`{validate(name, kind, internal=internal)}`"


def label(name: object, *, internal: bool = False) -> str:
    return quote(name, Kind.LABEL, internal=internal)


def rel_type(name: object, *, internal: bool = False) -> str:
    return quote(name, Kind.REL_TYPE, internal=internal)


def prop(name: object, *, internal: bool = False) -> str:
    return quote(name, Kind.PROPERTY, internal=internal)


def param_name(name: str) -> str:
    """Parameter names are chosen by kgmigrate, never by users; keep them plain."""
    if not _PARAM_NAME.fullmatch(name):
        raise IdentifierError(f"parameter name {name!r} must match {_PARAM_NAME.pattern}")
    return name


# Fragments of a pattern or an expression, with the name through the escaping above.


def ref(var: str, name: str) -> str:
    """`var.name`: a property of a bound variable."""
    return f"{var}.{prop(name)}"


def labelled(var: str, name: str) -> str:
    """`var:Label`, as a predicate or in SET/REMOVE."""
    return f"{var}:{label(name)}"


def typed(var: str, name: str) -> str:
    """`var:TYPE`, inside a relationship pattern."""
    return f"{var}:{rel_type(name)}"

