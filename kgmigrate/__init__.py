"""kgmigrate: distributed, resumable, reversible migrations for a knowledge graph.

The core package: models, operations, graph backends, configuration, the ledger and lock, the
embedded stack and the API that both the orchestrator and the workers build on. It never
imports either of them.
"""

from kgmigrate.model.migration import Migration
from kgmigrate.model.records import MigrationMetadata, MigrationStatus, MigrationStep

__version__ = "0.1.0"
__all__ = ["Migration", "MigrationMetadata", "MigrationStatus", "MigrationStep", "__version__"]
