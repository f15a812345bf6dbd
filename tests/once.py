"""For the tests' hook modules: an action that must happen once across worker processes."""

import os


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
