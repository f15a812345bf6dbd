"""Python-callable transforms the tests and the benchmark import by name, as workers do."""

import hashlib
import os

from tests.once import first_time, wait_at_gate


def normalize(value: object) -> object:
    """Text normalization: trimmed, lower case, inner whitespace collapsed."""
    return " ".join(str(value).split()).lower() if value is not None else None


def embed(values: list[object]) -> list[list[float]]:
    """A vectorized stand-in for an embedding model: a deterministic 4-float vector per text."""
    return [[b / 255.0 for b in hashlib.sha256(str(v).encode()).digest()[:4]] for v in values]


def burn(value: object, rounds: int = 2000) -> str:
    """Deliberately CPU-bound (about 1 ms): what makes a second worker pay off."""
    digest = str(value).encode()
    for _ in range(rounds):
        digest = hashlib.sha256(digest).digest()
    return digest.hex()[:16]


def broken(value: object) -> object:
    raise ValueError(f"cannot transform {value!r}")


def held(value: object) -> object:
    """Ten times the value; the first worker to meet KGM_HOLD_VALUE waits there until the test
    opens KGM_GATE: a batch held in flight, past every check made before it starts."""
    if str(value) == os.environ.get("KGM_HOLD_VALUE") and first_time("KGM_HOLD_FIRST"):
        wait_at_gate(os.environ["KGM_GATE"])
    return int(str(value)) * 10
