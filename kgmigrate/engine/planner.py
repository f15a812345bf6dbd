"""Cut a step into batches: stream the scope's keys in order, cut them, record the batches.

Batches are addressed by key ranges (FalkorDB) or key lists (Neo4j), never by SKIP/OFFSET.
The backend yields batches as it cuts them (on FalkorDB the cuts are computed on the server)
and they are written to the ledger in chunks, so planning memory is bounded by the chunk.
"""


from kgmigrate.compile import Plan
from kgmigrate.engine.batch_statement import address_to_json, batch_id
from kgmigrate.graph.base import GraphBackend
from kgmigrate.ledger import Ledger
from kgmigrate.model.records import PlannedBatch, StepRecord

LEDGER_CHUNK = 500


def plan_step(backend: GraphBackend, ledger: Ledger, step: StepRecord, plan: Plan) -> int:
    """Record the step's batches (once: a planned step is not planned again); return how many."""
    if step.planned:
        return step.batches_total
    scope = plan.scope  # as the workers will address it
    if scope is None:  # unbatched: one task, one "batch" that stands for the statement
        ledger.create_batches(step.run_id, step.id, [
            PlannedBatch(batch_id(step.run_id, step.order, 1), 1, {"statement": True})])
        ledger.mark_planned(step.id, batches=1, entities=0)
        return 1
    chunk: list[PlannedBatch] = []
    batches = entities = 0
    for address, count in backend.plan_batches(scope, step.batch_size):
        batches += 1
        entities += count
        chunk.append(PlannedBatch(batch_id(step.run_id, step.order, batches), batches,
                                  address_to_json(address)))
        if len(chunk) == LEDGER_CHUNK:
            ledger.create_batches(step.run_id, step.id, chunk)
            chunk = []
    if chunk:
        ledger.create_batches(step.run_id, step.id, chunk)
    ledger.mark_planned(step.id, batches=batches, entities=entities)
    return batches
