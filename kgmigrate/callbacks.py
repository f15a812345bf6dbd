"""Running neo4j-migrations' callbacks (kgmigrate.model.callbacks) at their phases.

Where each phase falls in kgmigrate:

- `beforeFirstUse`: once per `Migrations` facade (each CLI command is one), before the first
  of its verbs that reads the migrations directory.
- `beforeMigrate`: `upgrade`, before anything is checked, locked or recorded.
- `afterMigrate`: when the upgrade's run ends, whatever its outcome (completed; failed and
  stopped; rolled back; its rollback blocked), run by the worker that ends it while the run
  still holds the migration lock. The callbacks are kept on the run when it starts, so workers
  need no migrations directory and run the callbacks as they were then. A run continued after
  a failure runs them again when it ends again. When `upgrade` starts no run (nothing
  pending, or refused), at once, by the caller.
- `beforeValidate` / `afterValidate`: around `validate`; `beforeInfo` / `afterInfo`: around
  `list` (the after phase whatever the verb's outcome).

A failing callback stops the verb with one line naming the file and the statement. An
afterMigrate callback that fails in a worker cannot stop the run any more: what it did is
noted on the run (`status` shows it), and the run's outcome stands.
"""

import logging
from collections.abc import Callable, Iterable

from kgmigrate.cypher.text import needs_implicit_transaction
from kgmigrate.errors import BackendError, KgmError
from kgmigrate.graph.base import GraphBackend
from kgmigrate.ledger import Ledger
from kgmigrate.model.callbacks import Callback, scripts_from_json

log = logging.getLogger("kgmigrate.callbacks")


class CallbackError(KgmError):
    """A callback's statement failed."""


def invoke(backend: GraphBackend, callbacks: Iterable[Callback]) -> int:
    """Run the callbacks' statements in order, each in a transaction of its own (an implicit
    one for `CALL { ... } IN TRANSACTIONS`); how many ran. Stops at the first that fails."""
    ran = 0
    for callback in callbacks:
        for number, statement in enumerate(callback.statements, start=1):
            try:
                if needs_implicit_transaction(statement):
                    backend.run_autocommit(statement)
                else:
                    backend.write(statement)
            except BackendError as exc:
                raise CallbackError(f"{callback.phase} callback {callback.name}, statement "
                                    f"{number}: {exc}") from None
            ran += 1
    return ran


def around[T](backend: GraphBackend, before: Iterable[Callback], after: Iterable[Callback],
           verb: Callable[[], T]) -> T:
    """`verb` between its before and after callbacks; the after ones run whatever its outcome
    (when it raised, a failing after callback is logged and the verb's error stands)."""
    invoke(backend, before)
    try:
        result = verb()
    except BaseException:
        invoke_quietly(backend, after)
        raise
    invoke(backend, after)
    return result


def invoke_quietly(backend: GraphBackend, callbacks: Iterable[Callback]) -> None:
    """After a verb that failed: its error is the one to tell; a failing callback is logged."""
    try:
        invoke(backend, callbacks)
    except KgmError as exc:
        log.warning("%s", exc)


def after_migrate(backend: GraphBackend, run_id: str) -> None:
    """A run's afterMigrate callbacks, by the first delivery that ends it; what they did is
    noted on the run. Never raises: the run has ended, and its outcome stands."""
    ledger = Ledger(backend)
    try:
        scripts = scripts_from_json(ledger.claim_after_migrate(run_id))
        if not scripts:
            return
        try:
            ran = invoke(backend, scripts)
            entry = (f"afterMigrate: {', '.join(c.name for c in scripts)} ran ({ran} "
                     f"statement{'s' if ran != 1 else ''})")
        except CallbackError as exc:
            entry = f"afterMigrate failed: {exc}"
        ledger.note_callback(run_id, entry)
        log.info("run %s: %s", run_id, entry)
    except KgmError as exc:
        log.warning("run %s: its afterMigrate callbacks: %s", run_id, exc)
