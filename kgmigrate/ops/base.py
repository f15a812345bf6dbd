"""Operations: each change is an object that describes itself and knows its inverse.

As in Alembic, describing a change is separate from executing it: an operation says what it
touches (`scope`, or None when it runs once, unbatched), what it is (`spec`, recorded in the
ledger as JSON) and what undoes it (`reverse()`). Rendering per dialect and execution come
with the execution layer.
"""

from abc import ABC, abstractmethod
from typing import Any, ClassVar

from kgmigrate.errors import KgmError
from kgmigrate.model.scope import Scope


class IrreversibleOperationError(KgmError):
    """An operation that cannot be undone was asked for its inverse."""


class Operation(ABC):
    kind: ClassVar[str]

    @property
    @abstractmethod
    def description(self) -> str: ...

    def scope(self) -> Scope | None:
        """The entities the operation touches, for batching and estimates; None: runs once."""
        return None

    @abstractmethod
    def reverse(self) -> "Operation":
        """The operation that undoes this one; IrreversibleOperationError if there is none."""

    @abstractmethod
    def spec(self) -> dict[str, Any]:
        """What the operation is, as JSON-able data (kept in the ledger for the audit trail)."""
