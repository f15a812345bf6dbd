"""The `GraphBackend` port. Nothing above it knows which server it talks to."""

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import Any, ClassVar, Self

from kgmigrate.cypher import identifiers as ident
from kgmigrate.cypher.dialect import Dialect
from kgmigrate.errors import BackendError, IdentifierError, ParameterError
from kgmigrate.graph.batching import cut
from kgmigrate.graph.state import state_rows
from kgmigrate.graph.types import QueryResult, ServerInfo
from kgmigrate.model.scope import BatchAddress, EntityKind, IndexSpec, Key, KeyList, Scope
from kgmigrate.model.state import StateRows
from kgmigrate.runtime.settings import GraphTarget

Params = Mapping[str, Any]
Metadata = Mapping[str, str | int | float | bool]
_INT64 = 2**63


class GraphBackend(ABC):
    """Run statements, stream keys, manage indexes. One instance per process; thread-safe as
    far as its client's connection pool is."""

    dialect: Dialect
    target: GraphTarget  # where it connects; `target.display` is safe to show
    # What this server takes beyond the portable values (see `check_params`)
    native_types: ClassVar[tuple[type, ...]] = ()
    nul_ok: ClassVar[bool] = False

    def check_params(self, params: Params | None) -> dict[str, Any]:
        """`params`, once every name and value is one this server takes exactly (else a
        ParameterError naming the parameter): what the adapters run before sending."""
        return check_params(params, self.native_types, nul_ok=self.nul_ok)

    def check_value(self, value: Any, where: str) -> None:
        """Refuse a value this server cannot store (a ParameterError, "`where`: why"): the
        same rule, for a value not yet in a statement (a migration's, as it loads)."""
        check_value(value, where, self.native_types, self.nul_ok)

    @abstractmethod
    def write(self, statement: str, params: Params | None = None, *,
              metadata: Metadata | None = None, timeout: float | None = None) -> QueryResult:
        """Run `statement` in a write transaction; all of it or nothing of it is applied."""

    def run_autocommit(self, statement: str, params: Params | None = None, *,
                       metadata: Metadata | None = None) -> QueryResult:
        """Run `statement` in an implicit (auto-commit) transaction, the only kind in which
        Neo4j runs `CALL { ... } IN TRANSACTIONS` (it commits as it goes: not all or nothing).
        Only a server whose dialect has `implicit_transactions` can."""
        raise BackendError(f"{self.dialect.name} has no implicit transactions to run "
                           "`CALL { ... } IN TRANSACTIONS` in")

    @abstractmethod
    def read(self, statement: str, params: Params | None = None, *,
             metadata: Metadata | None = None, timeout: float | None = None) -> QueryResult:
        """Run `statement` in a read-only transaction."""

    def verify(self) -> None:
        """Reach the server once, failing fast (a BackendError, or a ConfigError for refused
        credentials) instead of retrying."""
        self.read("RETURN 1 AS ok")

    @abstractmethod
    def probe_write(self, statement: str, params: Params | None = None, *,
                    undoes_itself: bool = False) -> QueryResult:
        """Run a write statement and return its records, keeping none of its effects (for
        diagnosing a failed batch: what would it have written?). `undoes_itself`: the
        statement puts back all it changes before it ends, so a server without a transaction
        to roll back may run it as it is (one atomic statement: no one sees it between). A
        server that would copy the graph to probe refuses (`ProbeTooLarge`) a graph larger
        than its limit."""

    @abstractmethod
    def iter_keys(self, scope: Scope, *, internal: bool = False) -> Iterator[Key]:
        """Yield the batching key of every entity in `scope`, in key order, streaming: memory
        stays bounded whatever the graph's size (see each dialect's `anchor`)."""

    def plan_batches(self, scope: Scope, batch_size: int, *,
                     internal: bool = False) -> Iterator[tuple[BatchAddress, int]]:
        """Batch addresses of `scope` with the number of entities in each, streaming.

        The default streams every key and cuts it; a backend may compute the cuts on the
        server instead (FalkorDB does), which is what makes planning cheap."""
        counted = _CountingKeys(self.iter_keys(scope, internal=internal))
        before = 0
        for address in cut(counted, batch_size, self.dialect.batch_addressing):
            if isinstance(address, KeyList):
                yield address, len(address.keys)
                continue
            # `cut` yields a range once it has read the key that opens the next one, or at the
            # end of the stream
            upto = counted.count if counted.exhausted else counted.seen_before_last
            yield address, upto - before
            before = upto

    # -- entity states (kgmigrate.graph.state) ------------------------------------------------

    def capture(self, scope: Scope, batch: BatchAddress) -> StateRows:
        """The exact state of every entity of one batch of `scope` (an undo pre-image)."""
        statement, params = self.dialect.states_in_batch(scope, batch)
        return state_rows(self.read(statement, params).records)

    @abstractmethod
    def iter_states(self, entity: EntityKind, labels: tuple[str, ...] = ()
                    ) -> Iterator[StateRows]:
        """Every user entity's exact state (ledger entities excluded), page by page, streaming;
        with `labels`, only nodes with one of them and relationships touching those."""

    @abstractmethod
    def ensure_index(self, spec: IndexSpec) -> bool:
        """Create the index/constraint unless it exists; return whether it was created."""

    @abstractmethod
    def drop_index(self, spec: IndexSpec) -> bool:
        """Drop the index/constraint if it exists; return whether it was dropped."""

    @abstractmethod
    def indexes(self) -> list[IndexSpec]:
        """The range indexes and uniqueness constraints the graph has."""

    @abstractmethod
    def server_info(self) -> ServerInfo: ...

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class _CountingKeys:
    """Counts keys as `cut` pulls them; `seen_before_last` excludes the key that made `cut`
    yield (it opens the next batch)."""

    def __init__(self, keys: Iterator[Key]) -> None:
        self.keys, self.count, self.seen_before_last = keys, 0, 0
        self.exhausted = False

    def __iter__(self) -> Iterator[Key]:
        for key in self.keys:
            self.seen_before_last = self.count
            self.count += 1
            yield key
        self.exhausted = True


def check_params(params: Params | None, native: tuple[type, ...] = (), *,
                 nul_ok: bool = False) -> dict[str, Any]:
    """Refuse parameter values that a server cannot take safely, before anything is sent.

    The FalkorDB client pastes parameters into a `CYPHER k=v` header of the query text, so
    the value space is kept to what round-trips exactly on both servers (tests prove it).
    `native`: further types the server's own driver sends exactly (Neo4j's temporal and
    spatial values, byte arrays: see kgmigrate.graph.values); `nul_ok`: the driver sends NUL
    characters in strings as data (Bolt does; the FalkorDB client's text header cannot).
    """
    if params is None:
        return {}
    checked: dict[str, Any] = {}
    for name, value in params.items():
        try:
            ident.param_name(name)
        except IdentifierError as exc:
            raise ParameterError(str(exc)) from None
        check_value(value, f"parameter {name}", native, nul_ok)
        checked[name] = value
    return checked


def check_value(value: Any, where: str, native: tuple[type, ...] = (),
                nul_ok: bool = False) -> None:
    """`check_params` for one value; the ParameterError says "`where`: why"."""
    if value is None or isinstance(value, (bool, *native)):
        return
    if isinstance(value, int):
        if not -_INT64 <= value < _INT64:
            raise ParameterError(f"{where}: integer {value} does not fit in 64 bits")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ParameterError(f"{where}: {value} is not a finite number")
    elif isinstance(value, str):
        if "\x00" in value and not nul_ok:
            shown = repr(value) if len(value) <= 40 else f"{value[:37]!r}..."
            raise ParameterError(f"{where}: {shown} contains a NUL character, which this "
                                 "server cannot take in a string")
        if any(0xD800 <= ord(ch) <= 0xDFFF for ch in value):
            raise ParameterError(f"{where}: string contains a lone surrogate")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            check_value(item, f"{where}[{i}]", native, nul_ok)
    elif isinstance(value, dict):
        for key, item in value.items():
            try:
                ident.validate(key, ident.Kind.PROPERTY, internal=True)
            except IdentifierError as exc:
                raise ParameterError(f"{where}: map key: {exc}") from None
            check_value(item, f"{where}.{key}", native, nul_ok)
    else:
        raise ParameterError(
            f"{where}: unsupported type {type(value).__name__} "
            "(use None, bool, int, float, str, list or dict)"
        )


def plain_entity(key: Key, labels: list[str], properties: dict[str, Any]) -> dict[str, Any]:
    """Nodes and relationships in records become plain dicts, identical across backends."""
    return {"key": key, "labels": labels, "properties": properties}
