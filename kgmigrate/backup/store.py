"""Where undo records and snapshots live: a key-value store of compressed JSON-lines objects.

Callers name objects by slash-separated keys (`runs/<run>/undo/<step>/<seq>.pre`) and never see
paths, so an object-store implementation (S3, GCS) can replace `DirectoryStore` without
touching them. Every object is written whole or not at all: a reader never sees half a record,
which is what lets a batch that crashed mid-write leave nothing, and a retried one overwrite.
"""

import gzip
import hashlib
import json
import os
import re
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from kgmigrate.errors import KgmError
from kgmigrate.graph import values

KEY_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}$")


class BackupStoreError(KgmError):
    """The backup store cannot be read or written, or holds a damaged object."""


def check_key(key: str) -> str:
    parts = key.split("/")
    if not parts or any(not KEY_PART.match(p) or p in (".", "..") for p in parts):
        raise BackupStoreError(f"invalid backup key {key!r}")
    return key


class BackupStore(ABC):
    """Objects are lists of JSON rows; `put_rows` is atomic and durable when it returns."""

    @abstractmethod
    def put_rows(self, key: str, rows: Iterable[Any]) -> str:
        """Write the object and return the sha256 of its stored bytes."""

    @abstractmethod
    def rows(self, key: str) -> Iterator[Any]:
        """The rows of an object; BackupStoreError when it is missing or damaged."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def keys(self, prefix: str) -> list[str]:
        """Keys under `prefix` (a key path without a trailing slash), sorted."""

    @abstractmethod
    def describe(self) -> str:
        """Where the store is, for messages."""

    @abstractmethod
    def size(self, key: str) -> int:
        """The object's stored bytes (0 when it is missing)."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object (nothing when it is missing); durable when it returns."""

    @abstractmethod
    def sha256(self, key: str) -> str:
        """The sha256 of the object's stored bytes (as `put_rows` returned it)."""

    def put_json(self, key: str, value: Any) -> str:
        return self.put_rows(key, [value])

    def get_json(self, key: str) -> Any:
        rows = list(self.rows(key))
        if len(rows) != 1:
            raise BackupStoreError(f"backup object {key} holds {len(rows)} rows, not one")
        return rows[0]


class DirectoryStore(BackupStore):
    """A local directory, or a shared volume every worker mounts (NFS, EFS, a PVC).

    Each object is `<key>.jsonl.gz`, written to a temporary file in the same directory, fsynced,
    renamed into place and the directory fsynced: durable and atomic on POSIX file systems.
    """

    SUFFIX = ".jsonl.gz"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def describe(self) -> str:
        return str(self.root)

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/")).with_name(
            key.rsplit("/", 1)[-1] + self.SUFFIX)

    def put_rows(self, key: str, rows: Iterable[Any]) -> str:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            digest = hashlib.sha256()
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as raw:
                    with _HashingWriter(raw, digest) as hashed, \
                            gzip.GzipFile(fileobj=hashed, mode="wb", compresslevel=1,
                                          mtime=0) as gz:
                        for chunk in _lines(rows):
                            gz.write(chunk)
                    raw.flush()
                    os.fsync(raw.fileno())
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            _fsync_dir(path.parent)
        except OSError as exc:
            raise BackupStoreError(f"cannot write backup object {key} in {self.root}: "
                                   f"{exc.strerror or exc}") from None
        return digest.hexdigest()

    def rows(self, key: str) -> Iterator[Any]:
        path = self._path(key)
        try:
            with gzip.open(path, "rb") as gz:
                for line in gz:
                    yield json.loads(line, object_hook=values.decode)
        except FileNotFoundError:
            raise BackupStoreError(f"backup object {key} is missing from {self.root}") from None
        except (OSError, EOFError, json.JSONDecodeError) as exc:
            raise BackupStoreError(f"backup object {key} in {self.root} is damaged: "
                                   f"{exc}") from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def keys(self, prefix: str) -> list[str]:
        base = self.root.joinpath(*check_key(prefix).split("/"))
        if not base.is_dir():
            return []
        found = []
        for path in base.rglob("*" + self.SUFFIX):
            if path.name.startswith(".tmp-"):
                continue
            rel = path.relative_to(self.root).as_posix()
            found.append(rel[: -len(self.SUFFIX)])
        return sorted(found)

    def size(self, key: str) -> int:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            return 0

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink(missing_ok=True)
            _fsync_dir(path.parent)
        except OSError as exc:
            raise BackupStoreError(f"cannot delete backup object {key} in {self.root}: "
                                   f"{exc.strerror or exc}") from None

    def sha256(self, key: str) -> str:
        try:
            return hashlib.sha256(self._path(key).read_bytes()).hexdigest()
        except FileNotFoundError:
            raise BackupStoreError(f"backup object {key} is missing from {self.root}") from None


_ENCODE = json.JSONEncoder(separators=(",", ":"), allow_nan=True).encode


def _lines(rows: Iterable[Any], per_chunk: int = 5_000) -> Iterator[bytes]:
    """JSON lines in chunks: one encoder, one write per chunk (3x faster than per row)."""
    batch: list[str] = []
    for row in rows:
        batch.append(_ENCODE(values.jsonable(row)))
        if len(batch) == per_chunk:
            yield ("\n".join(batch) + "\n").encode()
            batch = []
    if batch:
        yield ("\n".join(batch) + "\n").encode()


class _HashingWriter:
    """A write-only file object that hashes what passes through it."""

    def __init__(self, raw: Any, digest: "hashlib._Hash") -> None:
        self.raw, self.digest = raw, digest

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return int(self.raw.write(data))

    def flush(self) -> None:
        self.raw.flush()

    def __enter__(self) -> "_HashingWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.flush()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_store(backup_dir: Path) -> BackupStore:
    """The store named by configuration (a directory for now; a URL scheme picks others)."""
    return DirectoryStore(backup_dir)
