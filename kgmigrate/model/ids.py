"""Identifiers for runs, steps and batches that cannot collide and sort by creation time.

An id like `f"migration-{datetime.utcnow().isoformat()}"` collides when two migrations start
in the same microsecond on different hosts. These are ULIDs: 48 bits of milliseconds since the
epoch, then 80 random bits from the OS, in Crockford base32 (26 characters, no ambiguous
letters), with a readable prefix: `run_01JD3...`.
"""

import os
import re
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_ULID = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")
_PREFIX = re.compile(r"[a-z][a-z0-9]{0,15}")


def new_id(prefix: str, *, now_ms: int | None = None) -> str:
    if not _PREFIX.fullmatch(prefix):
        raise ValueError(f"id prefix {prefix!r} must be a short lowercase word")
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    if not 0 <= ms < 2**48:
        raise ValueError(f"timestamp {ms} does not fit in 48 bits")
    value = (ms << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return f"{prefix}_{''.join(reversed(chars))}"


def is_id(text: str, prefix: str) -> bool:
    head, _, tail = text.partition("_")
    return head == prefix and bool(_ULID.fullmatch(tail))


def id_time_ms(text: str) -> int:
    """The creation time (ms since the epoch) encoded in an id."""
    value = 0
    for ch in text.rpartition("_")[2][:10]:
        value = value * 32 + _ALPHABET.index(ch)
    return value  # 26 chars hold 130 bits: 2 zero bits on top, so 10 chars = the 48-bit time
