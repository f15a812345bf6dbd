"""Cutting key streams into batch addresses (pure, no server)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kgmigrate.graph import KeyList, KeyRange
from kgmigrate.graph.batching import cut


def test_ranges_tile_the_keys_and_never_split_equal_keys() -> None:
    keys = [1, 2, 2, 2, 5, 9, 9, 10, 11]
    assert list(cut(keys, 2, "range")) == [KeyRange(1, 5), KeyRange(5, 10), KeyRange(10, 12)]


def test_lists_are_chunks_of_size() -> None:
    assert list(cut(["a", "b", "c"], 2, "list")) == [KeyList(("a", "b")), KeyList(("c",))]


def test_no_keys_no_batches() -> None:
    assert list(cut([], 10, "range")) == []
    assert list(cut([], 10, "list")) == []


def test_out_of_order_keys_are_refused_for_ranges() -> None:
    with pytest.raises(ValueError, match="in order"):
        list(cut([3, 1], 1, "range"))


def test_batch_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        cut([1], 0, "range")


@given(st.lists(st.integers(min_value=0, max_value=10_000), max_size=400), st.integers(1, 50))
def test_every_key_falls_in_exactly_one_range(keys: list[int], size: int) -> None:
    keys.sort()
    batches = list(cut(iter(keys), size, "range"))
    assert all(isinstance(b, KeyRange) for b in batches)
    for key in keys:
        assert sum(1 for b in batches if isinstance(b, KeyRange) and b.lo <= key < b.hi) == 1
    # batches hold at least `size` keys except the last one, unless equal keys forced growth
    for batch in batches[:-1]:
        assert isinstance(batch, KeyRange)
        assert sum(1 for k in keys if batch.lo <= k < batch.hi) >= size
