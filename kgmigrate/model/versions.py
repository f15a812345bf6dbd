"""Migration file names, versions and checksums.

Names follow neo4j-migrations so existing files come along unchanged:
`V<version>__<description>.cypher` or `.py`, where the version is digits separated by `_` or `.`
(`V0001`, `V1_2`, `V2.0.1`) and compares numerically part by part (`V1_10` after `V1_9`).
"""

import hashlib
import re
from dataclasses import dataclass
from functools import total_ordering
from pathlib import Path

from kgmigrate.errors import KgmError

FILE_NAME = re.compile(r"(?P<prefix>[VR])(?P<version>\d+(?:[._]\d+)*)__(?P<description>[^.].*?)"
                       r"\.(?P<kind>cypher|py)")
# what neo4j-migrations reads as a migration (versioned or repeatable), whatever its format
NM_MIGRATION = re.compile(r"[VR]\d*(?:[._]\d+)*__.*\.(?:cypher|py|xml|java|kt)")
SKIPPED_DIRS = frozenset({"__pycache__"})
# neo4j-migrations' callbacks (kgmigrate.model.callbacks): `afterMigrate.cypher`,
# `afterMigrate__seed.cypher`; beforeClean/afterClean are phases of a verb kgmigrate lacks
PHASES = ("beforeFirstUse", "beforeMigrate", "afterMigrate", "beforeValidate",
          "afterValidate", "beforeInfo", "afterInfo")
WITHOUT_VERB = {"beforeClean": "clean", "afterClean": "clean"}
CALLBACK_FILE = re.compile(
    rf"(?P<phase>{'|'.join((*PHASES, *WITHOUT_VERB))})(?:__(?P<description>.+))?\.cypher")


class MigrationFileError(KgmError):
    """A migration file that cannot be used as it is."""


def is_callback(file_name: str) -> bool:
    return CALLBACK_FILE.fullmatch(file_name) is not None


@total_ordering
@dataclass(frozen=True)
class Version:
    parts: tuple[int, ...]
    text: str  # as written, e.g. "0001" or "1_2"

    @classmethod
    def parse(cls, text: str) -> "Version":
        raw = text[1:] if text[:1] in {"V", "v", "R", "r"} else text
        if not re.fullmatch(r"\d+(?:[._]\d+)*", raw):
            raise MigrationFileError(f"{text!r} is not a migration version (like V0001 or V1_2)")
        return cls(tuple(int(p) for p in re.split(r"[._]", raw)), raw)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() < other._key()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Version) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def _key(self) -> tuple[int, ...]:
        parts = list(self.parts)
        while len(parts) > 1 and parts[-1] == 0:  # V1 == V1_0 == V1.0.0
            parts.pop()
        return tuple(parts)

    def __str__(self) -> str:
        return f"V{self.text}"


@dataclass(frozen=True)
class MigrationFile:
    path: Path
    version: Version
    description: str
    kind: str  # "cypher" or "py"
    repeatable: bool = False  # `R<version>__...`: applied again whenever its checksum changes

    @classmethod
    def from_path(cls, path: Path) -> "MigrationFile":
        match = FILE_NAME.fullmatch(path.name)
        if match is None and path.name.startswith("R__"):
            raise MigrationFileError(
                f"{path.name}: a repeatable migration needs a version, R<version>__<description> "
                "(for example R0001__refresh_views.cypher), as neo4j-migrations names them")
        if match is None:
            raise MigrationFileError(
                f"{path.name}: migration files are named V<version>__<description>.cypher or "
                ".py (for example V0001__add_person_age.py), or R<version>__... for a "
                "repeatable one")
        description = match["description"].replace("_", " ").strip()
        return cls(path, Version.parse(match["version"]), description, match["kind"],
                   repeatable=match["prefix"] == "R")


def checksum(content: str | bytes) -> str:
    """A stable checksum of a migration file: SHA-256 of its text with line endings normalized,
    so a checkout with CRLF endings does not look like an edited migration."""
    text = content.decode("utf-8") if isinstance(content, bytes) else content
    normalized = text.replace("\r\n", "\n").replace("\r", "\n")
    return hashlib.sha256(normalized.encode("utf-8")).hexdigest()


def discover(directory: Path) -> list[MigrationFile]:
    """Migration files in `directory` (not recursive), in version order.

    Files that look like migrations but are misnamed, two files with the same version,
    neo4j-migrations' catalog migrations (`V0002__x.xml`) and migration files in subfolders
    are errors: silently skipping a migration is how data goes missing.
    """
    if not directory.is_dir():
        raise MigrationFileError(f"migrations directory {directory} does not exist "
                                 "(set KGMIGRATE_MIGRATIONS_DIR)")
    found: dict[Version, MigrationFile] = {}
    for path in sorted(directory.iterdir()):
        if path.is_dir():
            _refuse_nested(directory, path)
            continue
        if path.is_file() and path.suffix == ".xml" and NM_MIGRATION.fullmatch(path.name):
            raise MigrationFileError(
                f"{path.name}: catalog-based (.xml) migrations of neo4j-migrations are not "
                "supported; write it as a .cypher migration (or a .py one with "
                "ops.create_index / ops.drop_index for its indexes and constraints)")
        if path.is_file() and path.suffix in {".java", ".kt"} and NM_MIGRATION.fullmatch(
                path.name):
            raise MigrationFileError(
                f"{path.name}: Java-based migrations of neo4j-migrations are not supported; "
                "write it as a .py migration")
        if not path.is_file() or path.suffix not in {".cypher", ".py"}:
            continue
        if path.name == "__init__.py" or path.name.startswith(("_", ".")) or is_callback(
                path.name):  # a callback is read by kgmigrate.model.callbacks
            continue
        migration = MigrationFile.from_path(path)
        if migration.version in found:
            raise MigrationFileError(
                f"duplicate version {found[migration.version].version}: "
                f"{found[migration.version].path.name} "
                f"and {path.name}")
        found[migration.version] = migration
    return [found[v] for v in sorted(found)]


def _refuse_nested(directory: Path, folder: Path) -> None:
    """A subfolder holding migration files (`.cypher`, or `V...__`/`R...__` `.py`/`.xml`) is
    refused by name: kgmigrate reads the migrations directory itself only, and neo4j-migrations'
    nested locations would otherwise be skipped without a word. Hidden folders and
    `__pycache__` are left alone."""
    if folder.name.startswith(".") or folder.name in SKIPPED_DIRS:
        return
    nested = sorted(
        path for path in folder.rglob("*")
        if path.is_file() and not any(part.startswith(".") or part in SKIPPED_DIRS
                                      for part in path.relative_to(directory).parts[:-1])
        and (path.suffix == ".cypher" or NM_MIGRATION.fullmatch(path.name)))
    if nested:
        first = nested[0].relative_to(directory).as_posix()
        more = f" and {len(nested) - 1} more" if len(nested) > 1 else ""
        raise MigrationFileError(
            f"{first}{more}: migrations in subfolders of {directory} are not supported "
            "(kgmigrate reads that directory only, not its subfolders); move them into it, "
            "one file per version")
