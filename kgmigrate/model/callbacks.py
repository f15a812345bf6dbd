"""Callbacks: `.cypher` files run at a phase of a verb's life, as neo4j-migrations names them.

`afterMigrate.cypher` or `afterMigrate__seed_test_data.cypher` in the migrations directory runs
at that phase: the phase's name exactly (case-sensitive), then optionally two underscores and
a description, which orders the files of one phase. A callback is not a migration: it has no
version, is not recorded in the chain, has no checksum (it may change between runs) and is not
undone, so write it to be run again (`MERGE`, `IF NOT EXISTS`). Its statements are read like a
migration's (`;`-separated, CR/CRLF line ends, placeholders), each run in a transaction of its
own. Where each phase falls in kgmigrate: `kgmigrate.callbacks`.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from kgmigrate.cypher.text import (
    CypherTextError,
    split_statements,
    tokens,
)
from kgmigrate.model import placeholders as nm
from kgmigrate.model.migration import cypher_text
from kgmigrate.model.preconditions import STARTS
from kgmigrate.model.versions import CALLBACK_FILE, WITHOUT_VERB, MigrationFileError


@dataclass(frozen=True)
class Callback:
    phase: str
    description: str  # orders the callbacks of one phase ("" first)
    name: str  # the file's name
    statements: tuple[str, ...]


def load_callbacks(directory: Path, placeholders: Mapping[str, str] | None = None
                   ) -> dict[str, tuple[Callback, ...]]:
    """The directory's callbacks by phase, each phase's in the order of their descriptions.
    A callback of a phase kgmigrate has no verb for is refused by name."""
    found: dict[str, list[Callback]] = {}
    for path in sorted(directory.iterdir()) if directory.is_dir() else []:
        match = CALLBACK_FILE.fullmatch(path.name)
        if match is None or not path.is_file():
            continue
        phase = match["phase"]
        if phase in WITHOUT_VERB:
            raise MigrationFileError(
                f"{path.name}: kgmigrate has no {WITHOUT_VERB[phase]} verb, so this callback "
                "would never run; remove it (kgmigrate keeps its chain for the audit)")
        callback = Callback(phase, (match["description"] or "").replace("_", " ").strip(),
                            path.name, _statements(path, placeholders or {}))
        found.setdefault(phase, []).append(callback)
    return {phase: tuple(sorted(callbacks, key=lambda c: (c.description, c.name)))
            for phase, callbacks in found.items()}


def _statements(path: Path, values: Mapping[str, str]) -> tuple[str, ...]:
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise MigrationFileError(f"{path.name}: not UTF-8 text") from None
    text = cypher_text(path.name, text)
    try:
        condition = next((chunk.strip() for kind, chunk in tokens(text)
                          if kind == "comment" and STARTS.match(chunk.strip())), None)
        if condition is not None:
            raise MigrationFileError(
                f"{path.name}: `{condition}`: a callback has no preconditions (they decide "
                "whether a migration runs); remove it, or make the statement itself "
                "conditional")
        nm.substitute(text, values)  # every placeholder without a value, in one message
        statements = tuple(nm.substitute(s, values) for s in split_statements(text))
    except (CypherTextError, nm.PlaceholderError) as exc:
        raise MigrationFileError(f"{path.name}: {exc}") from None
    if not statements:
        raise MigrationFileError(f"{path.name}: no Cypher statements")
    return statements


def callbacks_json(callbacks: tuple[Callback, ...]) -> str | None:
    """Callbacks as kept on a run (its afterMigrate ones, run by a worker when it ends)."""
    if not callbacks:
        return None
    return json.dumps([{"phase": c.phase, "description": c.description, "name": c.name,
                        "statements": list(c.statements)} for c in callbacks])


def callbacks_from_json(text: str | None) -> tuple[Callback, ...]:
    if not text:
        return ()
    return tuple(Callback(d["phase"], d["description"], d["name"], tuple(d["statements"]))
                 for d in json.loads(text))
