"""Schema ops: indexes and uniqueness constraints, unbatched and idempotent. Their DDL differs
per server, so they run through the backend's `ensure_index` / `drop_index`, not as text."""

from dataclasses import asdict, dataclass
from typing import Any

from kgmigrate.cypher import identifiers as ident
from kgmigrate.errors import KgmError
from kgmigrate.model.scope import IndexSpec, Scope
from kgmigrate.ops.base import Operation


@dataclass(frozen=True)
class CreateIndex(Operation):
    """A range index (or, `unique=True`, a uniqueness constraint), idempotent."""

    label: str | None = None
    rel_type: str | None = None
    properties: tuple[str, ...] = ()
    unique: bool = False
    drop: bool = False
    kind = "index"

    def __post_init__(self) -> None:
        if (self.label is None) == (self.rel_type is None):
            raise KgmError("index: give exactly one of label or rel_type")
        if not self.properties:
            raise KgmError("index: name at least one property")
        object.__setattr__(self, "properties", tuple(self.properties))
        if self.label is not None:
            ident.validate(self.label, ident.Kind.LABEL)
        else:
            ident.validate(self.rel_type, ident.Kind.REL_TYPE)
        for name in self.properties:
            ident.validate(name, ident.Kind.PROPERTY)

    def index_spec(self) -> IndexSpec:
        if self.label is not None:
            return IndexSpec("node", self.label, self.properties, unique=self.unique)
        assert self.rel_type is not None
        return IndexSpec("relationship", self.rel_type, self.properties, unique=self.unique)

    @property
    def description(self) -> str:
        what = "uniqueness constraint" if self.unique else "index"
        on = f":{self.label}" if self.label else f"[:{self.rel_type}]"
        return f"{'drop' if self.drop else 'create'} {what} on {on}({', '.join(self.properties)})"

    def scope(self) -> Scope | None:
        return None

    def spec(self) -> dict[str, Any]:
        return asdict(self)

    def reverse(self) -> Operation:
        return CreateIndex(self.label, self.rel_type, self.properties, self.unique,
                           not self.drop)
