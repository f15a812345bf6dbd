"""Reading Cypher text: splitting `.cypher` migration files into statements.

Statements end at `;` outside string literals, backtick-quoted names and comments, as in
neo4j-migrations. Comment-only fragments are not statements. A `//` comment ends at the line's
end, whichever ending the file uses: `\n`, `\r\n` or a lone `\r` (old Mac files), as the
checksum counts them.

It also finds what a statement needs beyond Cypher run in a transaction of its own:
`CALL { ... } IN TRANSACTIONS` commits as it goes, so Neo4j runs it only in an implicit
(auto-commit) transaction; and what is not Cypher at all (`:use db`, a cypher-shell command) or
no longer is (`USING PERIODIC COMMIT`, removed in Neo4j 5). All of it is read from the code
only: the same words inside a string literal, a backtick name or a comment count for nothing.
"""

import re
from collections.abc import Iterator
from typing import Literal

from kgmigrate.errors import KgmError

LINE_END = re.compile(r"[\r\n]")
# `} IN TRANSACTIONS`, `} IN CONCURRENT TRANSACTIONS`, `} IN 4 CONCURRENT TRANSACTIONS`
IN_TRANSACTIONS = re.compile(
    r"\}\s*IN\s+(?:(?:[^{};]*?\s)?CONCURRENT\s+)?TRANSACTIONS\b", re.IGNORECASE)
PERIODIC_COMMIT = re.compile(r"\bUSING\s+PERIODIC\s+COMMIT\b", re.IGNORECASE)
# `:use name` opening a line or a statement (neo4j-migrations' and cypher-shell's command)
USE_DATABASE = re.compile(r"(?:^|;)[ \t]*(:use)[ \t]+[^\s;]", re.IGNORECASE | re.MULTILINE)
Token = tuple[Literal["code", "quoted", "comment", "end"], str]


class CypherTextError(KgmError):
    """Cypher text that cannot be read safely."""


def tokens(text: str) -> Iterator[Token]:
    """Code, quoted literals/names, comments and statement ends (`;`), in order."""
    i, n, start = 0, len(text), 0
    while i < n:
        ch = text[i]
        if ch in "'\"`" or text.startswith(("//", "/*"), i):
            if start < i:
                yield "code", text[start:i]
            if ch in "'\"`":
                end = _quote_end(text, i)
                yield "quoted", text[i:end]
            else:
                if text.startswith("//", i):
                    end = _line_end(text, i + 2)
                else:
                    found = text.find("*/", i + 2)
                    if found == -1:
                        raise CypherTextError("unterminated /* comment")
                    end = found + 2
                yield "comment", text[i:end]
            i = start = end
        elif ch == ";":
            if start < i:
                yield "code", text[start:i]
            yield "end", ";"
            i = start = i + 1
        else:
            i += 1
    if start < n:
        yield "code", text[start:]


def _line_end(text: str, i: int) -> int:
    """Where the line holding position `i` ends: its first `\n` or `\r` (or the text's end)."""
    found = LINE_END.search(text, i)
    return found.start() if found else len(text)


def normalize_line_endings(text: str) -> str:
    """`\r\n` and a lone `\r` as `\n`: the text the checksum is taken of
    (`kgmigrate.model.versions.checksum`), so two files with one checksum read the same."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _quote_end(text: str, i: int) -> int:
    quote, j = text[i], i + 1
    while j < len(text):
        if text[j] == "\\" and quote != "`":
            j += 2
            continue
        if text[j] == quote:
            return j + 1
        j += 1
    raise CypherTextError(f"unterminated {quote} quote")


def split_statements(text: str) -> list[str]:
    statements: list[str] = []
    current: list[str] = []
    for kind, chunk in [*tokens(text), ("end", "")]:
        if kind != "end":
            current.append(chunk)
            continue
        statement = "".join(current).strip()
        if strip_comments(statement):
            statements.append(statement)
        current = []
    return statements


def strip_comments(statement: str) -> str:
    """The statement without comments (quotes respected), whitespace-trimmed."""
    return "".join(chunk for kind, chunk in tokens(statement) if kind != "comment").strip()


def code_view(text: str) -> str:
    """`text` with its comments blanked, and its quoted literals and names but their quotes
    (every other character but a line end as a space): the same length and lines, only the
    code left to search."""
    def blank(kind: str, chunk: str) -> str:
        if kind == "quoted":
            return chunk[0] + re.sub(r"[^\n]", " ", chunk[1:-1]) + chunk[-1]
        return re.sub(r"[^\n]", " ", chunk) if kind == "comment" else chunk

    return "".join(blank(kind, chunk) for kind, chunk in tokens(text))


def needs_implicit_transaction(statement: str) -> bool:
    """Whether the statement holds `CALL { ... } IN TRANSACTIONS`, which commits its inner
    transactions as it goes: Neo4j runs it only in an implicit (auto-commit) transaction, never
    in a managed or explicit one."""
    return IN_TRANSACTIONS.search(code_view(statement)) is not None


def not_cypher(text: str) -> list[tuple[int, str]]:
    """What in `text` no server here runs as Cypher, as (line, why), in order: a `:use db`
    line (a command of cypher-shell and neo4j-migrations, not Cypher) and
    `USING PERIODIC COMMIT` (removed in Neo4j 5; FalkorDB never had it)."""
    code = code_view(text)

    def command(at: int) -> str:  # `:use name`, up to the line's or the statement's end
        end = min(i for i in (code.find(";", at), code.find("\n", at), len(code)) if i >= 0)
        return " ".join(text[at:end].split())

    found = [(match.start(1), f"`{command(match.start(1))}` is not Cypher: it switches the "
              "database in cypher-shell and neo4j-migrations, and kgmigrate migrates one "
              "database, the one KGMIGRATE_GRAPH_URL names; remove the line (another database's "
              "migrations go in a migrations directory of their own, run against it)")
             for match in USE_DATABASE.finditer(code)]
    found += [(match.start(), "`USING PERIODIC COMMIT` is not supported: Neo4j 5 removed it "
               "(and FalkorDB never had it); write `CALL { ... } IN TRANSACTIONS OF n ROWS` "
               "instead (Neo4j), or a batched step, `ops.batched` in a .py migration")
              for match in PERIODIC_COMMIT.finditer(code)]
    return [(code.count("\n", 0, at) + 1, why) for at, why in sorted(found)]
