"""Cut a step into batches: stream the scope's keys in order, cut them, record the batches.

Batches are addressed by key ranges (FalkorDB) or key lists (Neo4j), never by SKIP/OFFSET.
Keys are streamed and batches written to the ledger in chunks as they are cut, so planning
memory is bounded by the chunk, not by the graph.
"""

from collections.abc import Iterator

from kgmigrate.execution import address_to_json, batch_id
from kgmigrate.graph.base import GraphBackend
from kgmigrate.graph.batching import cut
from kgmigrate.graph.types import Key
from kgmigrate.ledger import Ledger
from kgmigrate.models import StepRecord
from kgmigrate.ops import Operation

LEDGER_CHUNK = 500


def plan_step(backend: GraphBackend, ledger: Ledger, step: StepRecord, op: Operation) -> int:
    """Record the step's batches (once: a planned step is not planned again); return how many."""
    if step.planned:
        return step.batches_total
    scope = op.scope()
    if scope is None:  # unbatched: one task, one "batch" that stands for the statement
        ledger.create_batches(step.run_id, step.id, [(batch_id(step.run_id, step.order, 1), 1,
                                                      {"statement": True})])
        ledger.mark_planned(step.id, batches=1, entities=0)
        return 1
    counted = _Counting(backend.iter_keys(scope))
    chunk: list[tuple[str, int, dict[str, object]]] = []
    seq = 0
    for seq, address in enumerate(cut(counted, step.batch_size,
                                      backend.dialect.batch_addressing), start=1):
        chunk.append((batch_id(step.run_id, step.order, seq), seq, address_to_json(address)))
        if len(chunk) == LEDGER_CHUNK:
            ledger.create_batches(step.run_id, step.id, chunk)
            chunk = []
    if chunk:
        ledger.create_batches(step.run_id, step.id, chunk)
    ledger.mark_planned(step.id, batches=seq, entities=counted.count)
    return seq


class _Counting:
    def __init__(self, keys: Iterator[Key]) -> None:
        self.keys, self.count = keys, 0

    def __iter__(self) -> Iterator[Key]:
        for key in self.keys:
            self.count += 1
            yield key
