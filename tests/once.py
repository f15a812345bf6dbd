"""For the tests' hook modules: an action that must happen once across worker processes, and a
gate a worker waits at until the test opens it."""

import os
import time
from pathlib import Path


def first_time(marker_env: str, note: str = "") -> bool:
    """True for the one caller that creates the file named by $marker_env (O_EXCL: atomic
    across processes); `note` is written into it for the test to read."""
    try:
        fd = os.open(os.environ[marker_env], os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.write(fd, note.encode())
    os.fsync(fd)
    os.close(fd)
    return True


def wait_at_gate(gate: str, timeout_s: float = 300) -> None:
    """Touch `gate`.waiting, then wait (polling, within `timeout_s`) until the test creates
    `gate`.open: the worker holds at a moment the test knows."""
    Path(gate + ".waiting").touch()
    deadline = time.monotonic() + timeout_s
    while not Path(gate + ".open").exists() and time.monotonic() < deadline:
        time.sleep(0.05)  # poll interval of the bounded wait above
