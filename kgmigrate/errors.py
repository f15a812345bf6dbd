"""Error types.

`KgmError` and its subclasses are *user-facing*: their message is one line that says what is
wrong and what to do, and the CLI prints it without a traceback. Anything else that escapes is a
bug and keeps its traceback.
"""


class KgmError(Exception):
    """A problem the user can act on; the message is shown as-is."""


class ConfigError(KgmError):
    """Invalid or missing configuration."""


class IdentifierError(KgmError, ValueError):
    """A label, relationship type or property name that cannot be used safely."""


class ParameterError(KgmError, ValueError):
    """A query parameter value that the graph server cannot take safely."""


class StackError(KgmError):
    """The embedded graph + broker stack could not be started, stopped or reached."""


class ProbeTooLarge(KgmError):
    """A probe (`GraphBackend.probe_write`) would copy a graph larger than allowed
    (KGMIGRATE_PROBE_COPY_MAX_MB): not run. The message says how large, and the limit."""


class BackendError(KgmError):
    """A statement failed on the graph server.

    `transient` says whether running the same statement again may succeed (lost connection,
    deadlock, leader switch); permanent errors (syntax, constraint violation) say False.
    """

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient
