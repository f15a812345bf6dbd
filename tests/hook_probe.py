"""A hooks module for the tests: workers import it (KGMIGRATE_HOOKS=tests.hook_probe) and it
appends every event, as a JSON line, to the file named by KGM_HOOK_LOG."""

import json
import os

from kgmigrate.monitoring import hooks


def _record(event: hooks.Event) -> None:
    with open(os.environ["KGM_HOOK_LOG"], "a") as log:
        log.write(json.dumps(event.model_dump(mode="json")) + "\n")


for name in hooks.HOOK_NAMES:
    hooks.add(name, _record)


@hooks.on("after_batch")
def _raise_on_purpose(event: hooks.Event) -> None:
    """A broken hook is logged and ignored: it must not fail the batch."""
    raise RuntimeError("a hook that raises")
