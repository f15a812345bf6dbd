"""What a task needs in the process it runs in: settings, the graph, the ledger, the lock.

Built once per process (keyed by pid: prefork workers fork after import, and connection pools
must not cross a fork). Steps' operations are rebuilt from the ledger, compiled, and cached by
step id.
"""

import os
from dataclasses import dataclass, field

from kgmigrate.backup.store import BackupStore, open_store
from kgmigrate.compile import Plan, compile_op
from kgmigrate.connect import backend_for, resolve
from kgmigrate.graph.base import GraphBackend
from kgmigrate.ledger import Ledger
from kgmigrate.ledger.lock import MigrationLock
from kgmigrate.model.records import StepRecord
from kgmigrate.ops import Operation, from_spec
from kgmigrate.runtime.settings import Settings, load_settings


@dataclass
class Runtime:
    settings: Settings
    backend: GraphBackend
    ledger: Ledger
    lock: MigrationLock
    store: BackupStore
    _steps: dict[str, tuple[StepRecord, Operation]] = field(default_factory=dict)
    _plans: dict[str, Plan] = field(default_factory=dict)

    def step(self, step_id: str) -> tuple[StepRecord, Operation]:
        if step_id not in self._steps:
            record = self.ledger.step(step_id)
            self._steps[step_id] = (record, from_spec(record.operation, record.spec))
        return self._steps[step_id]

    def plan(self, step_id: str) -> Plan:
        """What this process runs for the step, on its graph's dialect."""
        if step_id not in self._plans:
            self._plans[step_id] = compile_op(self.step(step_id)[1], self.backend.dialect.name)
        return self._plans[step_id]


_runtimes: dict[int, Runtime] = {}


def current() -> Runtime:
    pid = os.getpid()
    if pid not in _runtimes:
        settings = load_settings()
        backend = backend_for(resolve(settings, broker=False).graph, settings)
        _runtimes[pid] = Runtime(settings, backend, Ledger(backend),
                                 MigrationLock(backend, lease_s=settings.lock_lease_s),
                                 open_store(settings.backup_dir))
    return _runtimes[pid]
