"""One entity's state as undo records, snapshots and fingerprints keep it (JSON-able).

The short keys are the stored format (undo logs and snapshots written by earlier versions
read back the same), so they are typed here rather than renamed."""

from typing import Any, TypedDict

from kgmigrate.model.scope import Key


class StateRow(TypedDict, total=False):
    k: Key  # the entity's key
    l: list[str]  # a node's labels  # noqa: E741 (the stored name)
    ty: str  # a relationship's type
    s: Key  # a relationship's start node's key
    t: Key  # and its end node's
    p: dict[str, Any]  # properties, exact (a float is the double that was stored)
    sig: Any  # the server's own rendering of the state (`Dialect.signature`)
    q: Any  # FalkorDB only, while reading: the float parts still to make exact


StateRows = list[StateRow]
