"""Cut a stream of keys into batch addresses without holding the stream in memory.

Range addressing (FalkorDB) yields contiguous half-open ranges: each batch starts where the
previous one ended, so the ranges tile the key space from the first key to the last, and a
run of equal keys (a start node's relationships) is never split across two batches.
List addressing (Neo4j) yields lists of `size` keys.
"""

import itertools
from collections.abc import Iterable, Iterator
from typing import Literal

from kgmigrate.model.scope import BatchAddress, Key, KeyList, KeyRange


def cut(keys: Iterable[Key], size: int,
        addressing: Literal["range", "list"]) -> Iterator[BatchAddress]:
    if size < 1:
        raise ValueError(f"batch size must be at least 1, got {size}")
    return _cut_ranges(keys, size) if addressing == "range" else _cut_lists(keys, size)


def _cut_lists(keys: Iterable[Key], size: int) -> Iterator[BatchAddress]:
    return (KeyList(chunk) for chunk in itertools.batched(keys, size))


def _cut_ranges(keys: Iterable[Key], size: int) -> Iterator[BatchAddress]:
    lo: int | None = None
    last: int | None = None
    count = 0
    for raw in keys:
        key = int(raw)
        if last is not None and key < last:
            raise ValueError(f"range batching needs keys in order; {key} came after {last}")
        if lo is None:
            lo = key
        elif count >= size and key != last:
            yield KeyRange(lo, key)
            lo, count = key, 0
        last = key
        count += 1
    if lo is not None and last is not None:
        yield KeyRange(lo, last + 1)
