"""neo4j-migrations' checksums of a `.cypher` file, computed as neo4j-migrations computes them,
so that `kgmigrate import-chain` can tell whether a file is the one neo4j-migrations applied.

kgmigrate's own checksum (`kgmigrate.model.versions.checksum`) is the SHA-256 of the file with
its line endings normalized. neo4j-migrations' is another algorithm, over other text: it splits
the file into statements at each `;` that ends a line (quotes and comments are not looked at),
trims each (Java's `trim`: characters up to U+0020), drops a final `;` and empty statements,
makes each `:use database` of a statement a statement of its own, and takes the CRC32 of the
statements' UTF-8 bytes one after the other, as an unsigned decimal (`"1100083332"`). Three of
its settings give other values for the same file, and it accepts a recorded checksum equal to
any of a migration's:

- `autocrlf`: each statement's CRLFs become LFs first;
- Flyway-compatible checksums: the CRC32 of the file's lines without their line ends (a byte
  order mark dropped), as a signed decimal;
- without preconditions (its "alternative checksum"): the statements' leading precondition
  comments (`// assume that ...`) taken out, so that a migration recorded before its
  preconditions were added still matches.

The file's placeholders are not filled in: neo4j-migrations takes the checksum of the file as
written, as kgmigrate does.
"""

import re
import zlib
from dataclasses import dataclass

BOM = "\ufeff"
STATEMENT_END = re.compile(r";(?:\r?\n|\r)")
LINE_END = re.compile(r"\r?\n|\r")
FINAL_SEMICOLON = re.compile(r";(?=(?:\r\n|[\n\r\u0085\u2028\u2029])?\Z)")
USE_DATABASE = re.compile(r":use +([a-z][a-z\d.\-]{2,62})(?:;?(?:\r?\n|\r)?)?",
                          re.IGNORECASE | re.ASCII)
# what neo4j-migrations reads as a precondition (it refuses the file when one does not parse)
PRECONDITION = re.compile(r"// *(?:assume|assert)(?: in (?:schema|target))? (?:that|q')",
                          re.IGNORECASE | re.ASCII)


@dataclass(frozen=True)
class Checksum:
    value: str
    variant: str  # how neo4j-migrations gets it: "default", "autocrlf", "Flyway-compatible", ...


def checksums(content: bytes) -> list[Checksum]:
    """Every checksum neo4j-migrations may have recorded for a `.cypher` file with this
    content, the default one first."""
    text = content.decode("utf-8", errors="replace")
    found: list[Checksum] = []
    for autocrlf in (False, True):
        statements = _statements(text, autocrlf=autocrlf)
        found.append(Checksum(_crc(statements), "autocrlf" if autocrlf else "default"))
        found.append(Checksum(_crc([_without_preconditions(s) for s in statements]),
                              "without its preconditions, autocrlf" if autocrlf
                              else "without its preconditions"))
    flyway = zlib.crc32(re.sub(r"[\r\n]", "", text.removeprefix(BOM)).encode("utf-8"))
    found.append(Checksum(str(flyway - (1 << 32) if flyway >= 1 << 31 else flyway),
                          "Flyway-compatible"))
    unique: dict[str, Checksum] = {}
    for checksum in found:
        unique.setdefault(checksum.value, checksum)
    return list(unique.values())


def checksum(content: bytes) -> str:
    """neo4j-migrations' checksum of the file with its default settings."""
    return checksums(content)[0].value


def _crc(statements: list[str]) -> str:
    crc = 0
    for statement in statements:
        crc = zlib.crc32(statement.encode("utf-8"), crc)
    return str(crc)


def _trim(text: str) -> str:
    """Java's `String.trim()`: every character up to U+0020 off both ends."""
    start, end = 0, len(text)
    while start < end and text[start] <= " ":
        start += 1
    while end > start and text[end - 1] <= " ":
        end -= 1
    return text[start:end]


def _statements(text: str, *, autocrlf: bool) -> list[str]:
    found: list[str] = []
    for chunk in STATEMENT_END.split(text):
        statement = _trim(FINAL_SEMICOLON.sub("", _trim(chunk), count=1))
        if autocrlf:
            statement = statement.replace("\r\n", "\n")
        if not statement:
            continue
        rest, last = [], 0
        for use in USE_DATABASE.finditer(statement):  # `:use db` is a statement of its own
            rest.append(statement[last:use.start()])
            found.append(_trim(use.group(0)))
            last = use.end()
        rest.append(statement[last:])
        if remaining := "".join(rest):
            found.append(remaining)
    return found


def _without_preconditions(statement: str) -> str:
    """The statement without its leading precondition comments (and the line end after each;
    as neo4j-migrations does it, every lone CR of the statement goes too)."""
    if not statement.startswith("//"):
        return statement
    comments = []
    for line in LINE_END.split(statement):
        line = _trim(line)
        if not line.startswith("//"):
            break
        if PRECONDITION.search(line):
            comments.append(line)
    if not comments:
        return statement
    return re.sub("(" + "|".join(re.escape(c) for c in comments) + r")\r?\n|\r", "", statement)
