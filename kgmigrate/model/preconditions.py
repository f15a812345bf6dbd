"""Preconditions of `.cypher` migrations, in neo4j-migrations' grammar.

A precondition is a `//` comment line of the file (before `// kgmigrate:down`):

    // assume that edition is enterprise          (or community)
    // assert that version is 5.26                (several: `4.4, 5.1 or 5.26`)
    // assume that version is ge 5.0              (`ge`: at least; `lt`: below)
    // assert q' MATCH (b:Book) RETURN count(b) = 0    (a read-only query returning a boolean)

`assume` that does not hold skips the migration (recorded as skipped in the chain); `assert`
that does not hold stops `plan` and `upgrade` before anything is written. Keywords are
case-insensitive, as in neo4j-migrations; `in target` / `in schema` before `q'` are accepted
and mean the migrated graph (kgmigrate keeps its chain in that graph). A comment that starts
like a precondition (`// assume that ...`, `// assert q' ...`) but does not parse is an error,
not a comment: a mistyped precondition must not turn into no precondition.

A version compares part by part: `5.2` is 5.2.x, not 5.26 (neo4j-migrations compares the
version's text, where `5.2` would also match 5.26). On FalkorDB, an edition or version
precondition does not hold: it asks about Neo4j, and the server is not Neo4j.
"""

import re
from dataclasses import dataclass
from typing import Literal

from kgmigrate.errors import KgmError
from kgmigrate.graph.types import ServerInfo

Kind = Literal["assume", "assert"]
STARTS = re.compile(r"^//\s*(?P<kind>assume|assert)(?:\s+in\s+(?:schema|target))?\s+(?:that\s|q')",
                    re.IGNORECASE)
QUERY = re.compile(r"^//\s*(?:assume|assert)(?:\s+in\s+(?P<db>schema|target))?\s+q'(?P<query>.*)$",
                   re.IGNORECASE | re.DOTALL)
EDITION = re.compile(r"^//\s*(?:assume|assert)\s+that\s+edition\s+is\s*(?P<edition>\S*)\s*$",
                     re.IGNORECASE)
VERSION = re.compile(r"^//\s*(?:assume|assert)\s+that\s+version\s+is\s*(?P<versions>.*?)\s*$",
                     re.IGNORECASE)
ONE_VERSION = re.compile(r"\d+(?:\.\d+)*")
RANGE = re.compile(r"^(?P<mode>lt|ge)\s+(?P<version>\d+(?:\.\d+)*)$", re.IGNORECASE)
USAGE = ("`<assume|assert> that edition is <enterprise|community>`, `<assume|assert> that "
         "version is <versions>` (e.g. `5.26`, `4.4, 5.26`, `ge 5.0`, `lt 5.0`) or "
         "`<assume|assert> q' <read-only query returning a boolean>`")


class PreconditionError(KgmError):
    """A comment that starts like a precondition but is not one."""


@dataclass(frozen=True)
class Precondition:
    kind: Kind
    subject: Literal["edition", "version", "query"]
    text: str  # as written, without `//`: how messages name it
    edition: Literal["enterprise", "community"] | None = None
    mode: Literal["is", "lt", "ge"] = "is"
    versions: tuple[tuple[int, ...], ...] = ()
    query: str | None = None

    @property
    def assumption(self) -> bool:
        return self.kind == "assume"

    @property
    def about_neo4j(self) -> bool:
        """Edition and version preconditions ask about the Neo4j server."""
        return self.subject != "query"

    def holds_on(self, server: ServerInfo) -> bool:
        """Whether an edition or version precondition holds on `server` (never on FalkorDB:
        it asks about Neo4j)."""
        if self.subject == "query":
            raise KgmError("a query precondition is evaluated by running its query")
        if server.backend != "neo4j":
            return False
        if self.subject == "edition":
            return (server.edition or "").lower() == self.edition
        release = release_parts(server.release)
        if release is None:
            return False
        if self.mode == "is":
            return any(release[:len(v)] == v for v in self.versions)
        wanted = self.versions[0]
        width = max(len(release), len(wanted))
        below = _padded(release, width) < _padded(wanted, width)
        return below if self.mode == "lt" else not below

    def not_holding(self, server: ServerInfo) -> str:
        """Why an edition or version precondition does not hold on `server`."""
        if server.backend != "neo4j":
            return (f"`{self.text}` does not hold: the server is {server.version}, not Neo4j "
                    "(edition and version preconditions ask about Neo4j)")
        return f"`{self.text}` does not hold on {server.version}"


def _padded(parts: tuple[int, ...], width: int) -> tuple[int, ...]:
    return parts + (0,) * (width - len(parts))


def release_parts(release: str | None) -> tuple[int, ...] | None:
    """`5.26.0` (or `2025.10.1`, `5.26.0-aura`) as numbers; None when it has none."""
    found = ONE_VERSION.match(release or "")
    return tuple(int(p) for p in found.group().split(".")) if found else None


def parse(comment: str) -> Precondition | None:
    """The precondition a `//` comment states; None for any other comment. A comment that
    starts like one (`// assume that`, `// assert q'`) but does not parse raises
    PreconditionError naming it and the grammar."""
    line = comment.strip()
    start = STARTS.match(line)
    if start is None:
        return None
    kind: Kind = "assume" if start["kind"].lower() == "assume" else "assert"
    text = line[2:].strip()
    if query := QUERY.match(line):
        body = query["query"].strip()
        if not body:
            raise PreconditionError(f"precondition `{text}` has no query; usage: {USAGE}")
        return Precondition(kind, "query", text, query=body)
    if edition := EDITION.match(line):
        name = edition["edition"].lower()
        if name not in ("enterprise", "community"):
            raise PreconditionError(f"precondition `{text}`: the edition is enterprise or "
                                    "community")
        return Precondition(kind, "edition", text,
                            edition="enterprise" if name == "enterprise" else "community")
    if version := VERSION.match(line):
        return _version(kind, text, version["versions"])
    raise PreconditionError(f"`{text}` is not a precondition; usage: {USAGE}")


def _version(kind: Kind, text: str, written: str) -> Precondition:
    if ranged := RANGE.match(written):
        mode: Literal["lt", "ge"] = "lt" if ranged["mode"].lower() == "lt" else "ge"
        parts = tuple(int(p) for p in ranged["version"].split("."))
        return Precondition(kind, "version", text, mode=mode, versions=(parts,))
    items = [item.strip() for item in re.split(r",|\bor\b", written, flags=re.IGNORECASE)]
    if not written or not all(ONE_VERSION.fullmatch(item) for item in items):
        raise PreconditionError(
            f"precondition `{text}`: versions are numbers like 5.26, separated by `,` or "
            "`or`, or one of them after `ge` or `lt`")
    return Precondition(kind, "version", text,
                        versions=tuple(tuple(int(p) for p in i.split(".")) for i in items))
