"""`python -m kgmigrate.cli`."""

from kgmigrate.cli import main

if __name__ == "__main__":  # importing it (a test walks every module) runs nothing
    main()
