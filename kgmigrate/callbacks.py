"""Running neo4j-migrations' callbacks (kgmigrate.model.callbacks) at their phases.

Where each phase falls in kgmigrate:

- `beforeFirstUse`: once per `Migrations` facade (each CLI command is one), before the first
  of its verbs that reads the migrations directory.
- `beforeMigrate`: `upgrade`, once the migrations are read, before anything is locked or
  recorded (and before the checks that may refuse it).
- `afterMigrate`: when the upgrade's run first ends, whatever its outcome (completed; failed
  and stopped, by a failure or `cancel --keep`; rolled back; its rollback blocked), run by the
  worker that ends it while the run still holds the migration lock (kgmigrate.engine.ending).
  The callbacks are kept on the run when it starts, so workers need no migrations directory
  and run them as they were then. At most once per end: a worker that dies between claiming
  them and running them leaves them not run; a run continued after a failure runs them again
  when it ends again, a later rollback of a stopped run does not. When nothing is pending,
  by the caller, under the migration lock. A refused upgrade runs none; nor does `abandon`.
- `beforeValidate` / `afterValidate`: around `validate`; `beforeInfo` / `afterInfo`: around
  `list` (the after phase whatever the verb's outcome).

A failing callback stops the verb with one line naming the file and the statement (after a
verb that failed, a failing after callback is logged and the verb's error stands). An
afterMigrate callback that fails in a worker cannot change the run's outcome any more: what
it did is noted on the run (`status` shows it).
"""

import logging
from collections.abc import Callable, Iterable

from kgmigrate.cypher.text import needs_implicit_transaction
from kgmigrate.errors import BackendError, KgmError
from kgmigrate.graph.base import GraphBackend
from kgmigrate.ledger import Ledger
from kgmigrate.model.callbacks import Callback, callbacks_from_json

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
        try:  # the verb's error is the one to tell
            invoke(backend, after)
        except KgmError as exc:
            log.warning("%s", exc)
        raise
    invoke(backend, after)
    return result


def after_migrate(backend: GraphBackend, run_id: str) -> None:
    """A run's afterMigrate callbacks, by the first delivery that ends it; what they did is
    noted on the run. Never raises: the run has ended, and its outcome stands."""
    ledger = Ledger(backend)
    try:
        scripts = callbacks_from_json(ledger.claim_after_migrate(run_id))
        if not scripts:
            return
        try:
            ran = invoke(backend, scripts)
            entry = (f"afterMigrate callbacks ran: {', '.join(c.name for c in scripts)} "
                     f"({ran} statement{'s' if ran != 1 else ''})")
        except CallbackError as exc:
            entry = f"{exc} (the afterMigrate statements before it ran, the rest did not)"
        ledger.note_callback(run_id, entry)
        log.info("run %s: %s", run_id, entry)
    except Exception:  # the run ends whatever happened here: its lock must be released
        log.exception("run %s: its afterMigrate callbacks", run_id)
