"""compile(op, dialect): what the engine runs for an op, registered per op (see `registry`).

Importing this package registers every op's implementation: `raw` for the raw ops, and
`properties`, `structure`, `transforms` for the library.
"""

from kgmigrate.compile import properties, raw, structure, transforms
from kgmigrate.compile.plans import BatchPlan, Plan, SchemaPlan, StatementPlan, Touches
from kgmigrate.compile.registry import (
    DIALECTS,
    compile_op,
    render,
    require_dialect,
    sent_values,
)

__all__ = [
           "DIALECTS",
           "BatchPlan",
           "Plan",
           "SchemaPlan",
           "StatementPlan",
           "Touches",
           "compile_op",
           "properties",
           "raw",
           "render",
           "require_dialect",
           "sent_values",
           "structure",
           "transforms",
]
