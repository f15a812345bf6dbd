"""Placeholders in `.cypher` migrations: `${nm:key}`, as in neo4j-migrations.

A placeholder is replaced by its configured value (`KGMIGRATE_PLACEHOLDERS`, or neo4j-migrations'
`NM_PLACEHOLDERS_<key>` variables: see `kgmigrate.runtime.settings`) in each statement after the
file is split into statements, as neo4j-migrations does, so a value can neither end a statement
nor start a comment. The value is Cypher text, not a parameter: it is the operator's
configuration, trusted like the migration file itself. The checksum stays that of the file as
written, so changing a value is not an edit of an applied migration (neo4j-migrations' rule).
"""

import re
from collections.abc import Mapping

from kgmigrate.errors import KgmError

NAME = re.compile(r"[A-Za-z0-9_.-]+")
PLACEHOLDER = re.compile(r"\$\{nm:(?P<name>[A-Za-z0-9_.-]+)\}")
LOOKS_LIKE = re.compile(r"\$\{nm:[^}\r\n]{0,80}\}?")


class PlaceholderError(KgmError):
    """A placeholder without a value, or text that looks like one but is not."""


def check_name(name: str) -> str:
    """A placeholder's name: letters, digits, `_`, `.` and `-` (neo4j-migrations' rule)."""
    if not NAME.fullmatch(name):
        raise PlaceholderError(f"{name!r} is not a placeholder name (letters, digits, "
                               "'_', '.' and '-')")
    return name


def check_value(name: str, value: object) -> str:
    """A placeholder's value: text, without a NUL character (it becomes Cypher text)."""
    if not isinstance(value, str):
        raise PlaceholderError(f"placeholder {name}: the value must be a string, got "
                               f"{type(value).__name__}")
    if "\x00" in value:
        raise PlaceholderError(f"placeholder {name}: the value contains a NUL character")
    return value


def names(text: str) -> list[str]:
    """The placeholders `text` uses, in order of first use."""
    return list(dict.fromkeys(m["name"] for m in PLACEHOLDER.finditer(text)))


def substitute(text: str, values: Mapping[str, str]) -> str:
    """`text` with each `${nm:key}` replaced by its value. A placeholder without a value, or
    `${nm:...}` that is not a placeholder (a name with a space, an unclosed brace), is an
    error naming it: left as it is, it would reach the graph as a literal label or value."""
    for found in LOOKS_LIKE.finditer(text):
        if not PLACEHOLDER.fullmatch(found.group()):
            raise PlaceholderError(f"{found.group()!r} is not a placeholder: write "
                                   "${nm:name}, the name of letters, digits, '_', '.' and '-'")
    missing = [name for name in names(text) if name not in values]
    if missing:
        listed = ", ".join(f"${{nm:{name}}}" for name in missing)
        what = f"placeholder {listed} has" if len(missing) == 1 else (
            f"placeholders {listed} have")
        raise PlaceholderError(
            f"{what} no value: set it in KGMIGRATE_PLACEHOLDERS (a JSON object) or as "
            f"NM_PLACEHOLDERS_{missing[0]}")
    return PLACEHOLDER.sub(lambda m: values[m["name"]], text)
