"""`python -m kgmigrate.cli`."""

from kgmigrate.cli import main

main()
