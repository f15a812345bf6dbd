"""Reading Cypher text: splitting `.cypher` migration files into statements.

Statements end at `;` outside string literals, backtick-quoted names and comments, as in
neo4j-migrations. Comment-only fragments are not statements. A `//` comment ends at the line's
end, whichever ending the file uses: `\n`, `\r\n` or a lone `\r` (old Mac files), as the
checksum counts them.
"""

import re
from collections.abc import Iterator
from typing import Literal

from kgmigrate.errors import KgmError

LINE_END = re.compile(r"[\r\n]")
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
