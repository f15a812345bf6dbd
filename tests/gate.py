"""A hooks module for the tests (KGMIGRATE_HOOKS=tests.gate): holds a run before the step
numbered KGM_GATE_STEP starts, until the test opens the gate. It writes the file KGM_GATE
+ ".waiting" when it holds and waits for KGM_GATE + ".open" (at most 5 minutes), so a test can
write to the graph at a moment it knows: between two steps."""

import os
import time
from pathlib import Path

from kgmigrate.monitoring import hooks


@hooks.on("before_step")
def _hold_before_the_step(event: hooks.Event) -> None:
    if event.step != int(os.environ["KGM_GATE_STEP"]):
        return
    gate = os.environ["KGM_GATE"]
    Path(gate + ".waiting").touch()
    deadline = time.monotonic() + 300
    while not Path(gate + ".open").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
