"""Entity states: exact images of nodes and relationships.

Undo records, snapshots and fingerprints are all made of state rows (JSON-able):

    node:         {"k": key, "l": [labels], "p": {properties}, "sig": signature}
    relationship: {"k": key, "ty": type, "s": start key, "t": end key, "p": {...}, "sig": ...}

`p` is exact: a float read back is the same double that was stored. `sig` is the server's own
rendering of the state (`Dialect.signature`), kept to compare with later on the server.

FalkorDB replies round doubles to 15 significant digits, so its backend also reads every float
as integer mantissa and exponent, which is exact (`Dialect.state_fields`).
"""

import math
from typing import Any, cast

from kgmigrate.model.state import StateRow, StateRows

STATE_ROW = ("k", "l", "ty", "s", "t", "p", "sig")


def float_from_parts(mantissa: int, exponent: int, negative: bool) -> float:
    value = math.ldexp(mantissa, exponent)
    return -value if negative else value


def make_exact(rows: StateRows, parts: list[list[Any]]) -> StateRows:
    """Replace the rounded floats of state rows by the exact ones the server sent as parts
    ([key, property, list index or -1, mantissa, exponent, negative]); drop helper fields."""
    by_key = {row["k"]: row for row in rows}
    for key, name, index, mantissa, exponent, negative in parts:
        value = float_from_parts(int(mantissa), int(exponent), bool(negative))
        props = by_key[key]["p"]
        if index < 0:
            props[name] = value
        else:
            props[name][index] = value
    for row in rows:
        row.pop("q", None)
    return rows


def state_rows(records: list[dict[str, Any]]) -> StateRows:
    """Records read with `Dialect.state_fields` (or a page of them) are state rows: the
    statement names exactly those columns."""
    return cast(StateRows, records)


def is_relationship(row: StateRow) -> bool:
    return "ty" in row
