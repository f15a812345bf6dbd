"""kgmigrate: distributed, resumable, reversible migrations for a knowledge graph.

The core package: models, graph backends, configuration, the embedded stack and the API that
both the orchestrator and the workers build on. It never imports either of them.
"""

__version__ = "0.1.0"
