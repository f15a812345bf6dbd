"""kgmigrate: distributed, resumable, reversible migrations for a knowledge graph.

The library that both the orchestrator and the workers build on (it never imports either).
A migration file needs only `Migration` and `ops`; the Python API's manager and monitor classes are
imported on first use, so loading a migration file does not load the engine.
"""

from typing import Any

from kgmigrate.model.migration import Migration
from kgmigrate.model.records import MigrationMetadata, MigrationStatus, MigrationStep
from kgmigrate.model.throttle import Throttle

__version__ = "0.1.0"
__all__ = ["DataMigrationManager", "DataTransformationManager", "Migration", "MigrationMetadata",
           "MigrationMonitor", "MigrationStatus", "MigrationStep", "SchemaEvolutionManager",
           "Throttle", "__version__"]
_LAZY = {"DataMigrationManager": "kgmigrate.managers",
         "DataTransformationManager": "kgmigrate.managers",
         "SchemaEvolutionManager": "kgmigrate.managers",
         "MigrationMonitor": "kgmigrate.monitoring.monitor"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'kgmigrate' has no attribute {name!r}")
