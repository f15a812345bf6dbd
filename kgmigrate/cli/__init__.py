"""The `kgmigrate` command: a thin layer that parses arguments, calls the Python API and formats
what it returns. A `KgmError` becomes one line on stderr and exit code 1; never a traceback.
One module per group of verbs; each registers its commands on `app` when imported."""

import sys

from kgmigrate.cli import backup, migrations, monitoring, runs, stack  # noqa: F401 (registers)
from kgmigrate.cli.common import app
from kgmigrate.errors import KgmError

__all__ = ["app", "main"]


def main() -> None:
    try:
        app()
    except KgmError as exc:
        sys.stderr.write(f"kgmigrate: error: {exc}\n")
        sys.exit(1)
