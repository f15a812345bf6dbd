"""A run throttled to share the graph with live applications (issue 18, item 2): a rate over
all its workers, the batches' latency, a health query, each with a critical level that stops
the run as a failure does; set at start, changed while it runs, reached by a pause. Both
servers, real workers; rates are measured on the ledger's batch start times, never asserted
on the wall clock."""

import json
import re
from pathlib import Path

import pytest

from kgmigrate import runs
from kgmigrate.cli.limits import cleared_limits, throttle_from
from kgmigrate.connect import resolve
from kgmigrate.errors import KgmError
from kgmigrate.fingerprint import fingerprint
from kgmigrate.graph.base import GraphBackend
from kgmigrate.ledger import Ledger
from kgmigrate.model.records import BatchRecord, MigrationStatus, RunRecord
from kgmigrate.model.registry import Registry
from kgmigrate.model.throttle import ACTIVE_TRANSACTIONS, Throttle, checked
from kgmigrate.monitoring.exporter import families
from kgmigrate.monitoring.monitor import MigrationMonitor
from kgmigrate.runtime.settings import load_settings
from tests.conftest import Execution, wait_until, with_transforms
from tests.test_cli import run as kgm

ADD_ONE = """
from kgmigrate import Migration, ops

migration = Migration(author="test", batch_size=10, steps=[
    ops.batched("Item", "SET e.b = coalesce(e.b, 0) + 1"),
])
"""
HEALTH = "MATCH (h:Health) RETURN h.load AS n"
TIMEOUT_S = 600  # a loaded machine
FOREVER = 0.001  # batches per second: the second batch's turn is 1000 s away


def given_items(execution: Execution, graph: GraphBackend, count: int, *,
                workers: int = 1, load: int | None = None) -> None:
    """`count` items (b unset), a migration adding 1 to b in batches of 10, `workers` worker
    processes, and (`load`) a Health node the health query reads."""
    graph.write("UNWIND range(1, $n) AS i CREATE (:Item {i: i})", {"n": count})
    if load is not None:
        graph.write("CREATE (:Health {load: $load})", {"load": load})
    execution.write_migration("V0001__add_one.py", ADD_ONE)
    execution.env.update(KGMIGRATE_STALL_AFTER_S="2")
    execution.start_worker(concurrency=workers)


def start(graph: GraphBackend, throttle: Throttle) -> str:
    settings = load_settings()
    run_id = runs.enqueue_migration(graph, Registry.load(settings.migrations_dir),
                                    resolve(settings), throttle=throttle)
    assert run_id is not None
    return run_id


def batches(graph: GraphBackend, run: RunRecord) -> list[BatchRecord]:
    return [b for s in run.steps for b in Ledger(graph).batches(s.id)]


def committed(graph: GraphBackend, run_id: str) -> int:
    run = Ledger(graph).require_run(run_id)
    return sum(b.status is MigrationStatus.COMPLETED for b in batches(graph, run))


def changed_once(graph: GraphBackend) -> dict[str, int]:
    row = graph.read("MATCH (e:Item) RETURN sum(CASE WHEN e.b = 1 THEN 1 ELSE 0 END) AS once, "
                     "sum(CASE WHEN e.b > 1 THEN 1 ELSE 0 END) AS more").single()
    return {name: int(value or 0) for name, value in row.items()}


def waiting_for(graph: GraphBackend, run_id: str, words: str) -> RunRecord:
    """The run, once a batch of it waits for its throttle saying `words`."""
    return wait_until(lambda: (run := Ledger(graph).require_run(run_id)).throttle_note
                      and words in run.throttle_note and run, f"a batch waiting: {words}",
                      timeout_s=TIMEOUT_S)


def test_an_entity_rate_holds_over_fifty_batches_spread_over_two_workers(
        execution: Execution, graph: GraphBackend) -> None:
    # Given 500 items (50 batches of 10) and two worker processes, faster together than
    # the limit
    given_items(execution, graph, 500, workers=2)
    # When the run is limited to 30 entities (3 batches) per second
    run_id = start(graph, Throttle(max_rate=30))
    run = runs.wait(graph, run_id, timeout_s=TIMEOUT_S)
    # Then it completes, each item changed once
    assert run.status is MigrationStatus.COMPLETED, run.error_log
    assert changed_once(graph) == {"once": 500, "more": 0}
    # and its batches started at 30 entities a second, within 10%, by the ledger's times
    done = sorted(batches(graph, run), key=lambda b: b.started_at or run.created_at)
    assert len(done) == 50 and all(b.started_at for b in done)
    assert len({b.worker for b in done}) == 2  # both worker processes took batches
    first, last = done[0].started_at, done[-1].started_at
    assert first is not None and last is not None
    rate = sum(b.entities for b in done[:-1]) / (last - first).total_seconds()
    assert 27 <= rate <= 33, rate
    # and the time its batches waited shows in status, the metrics and Prometheus
    assert run.throttled_s > 0 and run.throttle == Throttle(max_rate=30)
    assert sum(b.throttled_s or 0 for b in done) == pytest.approx(run.throttled_s, rel=0.05)
    metrics = MigrationMonitor(graph).get_migration_metrics(run_id)
    assert metrics is not None and metrics.throttled_s == run.throttled_s
    exported = {f.name: f for f in families([metrics])}
    assert exported["kgmigrate_run_throttled_seconds"].samples[0].value == run.throttled_s


def test_a_batch_over_the_latency_limit_makes_the_next_wait_then_go_on(
        execution: Execution, graph: GraphBackend) -> None:
    # Given 60 items (6 batches) and one worker process
    given_items(execution, graph, 60)
    # When every batch takes longer than the latency limit
    run_id = start(graph, Throttle(max_latency_s=1e-6))
    run = runs.wait(graph, run_id, timeout_s=TIMEOUT_S)
    # Then each batch after the first waited (at least half a second) and then ran: the run
    # completed, each item changed once
    assert run.status is MigrationStatus.COMPLETED, run.error_log
    assert changed_once(graph) == {"once": 60, "more": 0}
    waits = [b.throttled_s for b in sorted(batches(graph, run), key=lambda b: b.seq)]
    assert waits[0] is None
    assert all(w is not None and w >= 0.5 for w in waits[1:]), waits
    assert run.throttle_note is None  # nothing waits any more


def test_a_batch_over_the_critical_latency_stops_the_run_as_a_failure_once(
        execution: Execution, graph: GraphBackend) -> None:
    # Given 100 items (10 batches) and one worker process
    given_items(execution, graph, 100)
    before = fingerprint(graph)
    # When every batch takes longer than the critical latency
    run_id = start(graph, Throttle(critical_latency_s=1e-6))
    run = runs.wait(graph, run_id, timeout_s=TIMEOUT_S)
    # Then the batch after the first stopped the run, with the reason, recorded once (the
    # batches behind it are not counted as failures), and the run was rolled back
    assert run.status is MigrationStatus.ROLLED_BACK, run.error_log
    assert run.error_log is not None and "over the critical latency 1e-06s" in run.error_log
    assert len(Ledger(graph).failed_batches(run)) == 1
    assert fingerprint(graph) == before


def test_a_health_query_over_its_limit_holds_every_batch_until_it_is_under(
        execution: Execution, graph: GraphBackend, tmp_path: Path) -> None:
    # Given 40 items, and a health query reading a load of 10
    given_items(execution, graph, 40, load=10)
    # When a run may start batches only while the load is at most 5
    run_id = start(graph, Throttle(health_query=HEALTH, max_health=5))
    # Then its first batch waits, saying why (in `status` too), and none commits
    run = waiting_for(graph, run_id, "returned 10, over 5")
    assert committed(graph, run_id) == 0 and changed_once(graph) == {"once": 0, "more": 0}
    shown = kgm("status", run_id, env=execution.env, cwd=tmp_path)
    assert "waiting now: health query `MATCH (h:Health) RETURN h.load AS n` returned 10" in (
        shown.stdout), shown.stdout
    # When the query stops answering with a number (its node is gone)
    graph.write("MATCH (h:Health) DELETE h")
    # Then the batches wait for it, saying so, rather than stop the run
    waiting_for(graph, run_id, "must return one number")
    assert committed(graph, run_id) == 0
    # When it answers again, with a load of 0
    graph.write("CREATE (:Health {load: 0})")
    run = runs.wait(graph, run_id, timeout_s=TIMEOUT_S)
    # Then the run goes on and completes, each item changed once
    assert run.status is MigrationStatus.COMPLETED, run.error_log
    assert changed_once(graph) == {"once": 40, "more": 0}
    assert run.throttled_s > 0


def test_a_critical_health_stops_the_run_as_a_failure_and_rolls_it_back(
        execution: Execution, graph: GraphBackend) -> None:
    # Given 100 items, a health load of 0, and a run at a batch a second that stops when the
    # load passes 100
    given_items(execution, graph, 100, load=0)
    before = fingerprint(graph)
    run_id = start(graph, Throttle(max_batch_rate=1, health_query=HEALTH, critical_health=100))
    wait_until(lambda: committed(graph, run_id) >= 2, "two batches committed",
               timeout_s=TIMEOUT_S)
    # When the load passes the critical level mid-run
    graph.write("MATCH (h:Health) SET h.load = 1000")
    run = runs.wait(graph, run_id, timeout_s=TIMEOUT_S)
    # Then the run stopped with the reason and was rolled back like a failed run: the graph
    # is as before it (the load set back)
    assert run.status is MigrationStatus.ROLLED_BACK, run.error_log
    assert run.error_log is not None and "returned 1000, over the critical 100" in (
        run.error_log)
    graph.write("MATCH (h:Health) SET h.load = 0")
    assert fingerprint(graph) == before


def test_a_health_query_that_writes_or_fails_is_refused_before_anything_is_recorded(
        execution: Execution, graph: GraphBackend) -> None:
    # Given 20 items and a migration
    given_items(execution, graph, 20)
    # When a run would be throttled by a query that writes, one with a typo, or one that
    # returns no number
    for query, words in (("CREATE (:Junk) RETURN 1 AS n", "health query `CREATE (:Junk)"),
                         ("MATCH (h:Health RETURN h.load", "health query `MATCH (h:Health"),
                         ("RETURN 'busy' AS n", "must return one number")):
        with pytest.raises(KgmError, match=re.escape(words)):
            start(graph, Throttle(health_query=query, max_health=5))
    # Then the server refused the first read-only: nothing was written, no run recorded
    assert graph.read("MATCH (j:Junk) RETURN count(j) AS n").value("n") == 0
    assert Ledger(graph).runs() == []
    assert changed_once(graph) == {"once": 0, "more": 0}


def test_limits_change_while_a_batch_waits_and_a_pause_reaches_it_cli(
        execution: Execution, graph: GraphBackend, tmp_path: Path) -> None:
    # Given 40 items (4 batches) and a run started from the CLI at one batch per 1000 s
    given_items(execution, graph, 40)
    env = with_transforms(execution)
    started = kgm("upgrade", "--no-wait", "--allow-no-workers", "--max-batch-rate", str(FOREVER),
                  "--json", env=env, cwd=tmp_path)  # its worker may still be starting
    assert started.returncode == 0, started.stderr
    run_id = json.loads(started.stdout)["run_id"]
    # Then its second batch waits for its turn, saying so
    waiting_for(graph, run_id, "rate limit")
    assert committed(graph, run_id) == 1
    shown = kgm("throttle", run_id, env=env, cwd=tmp_path)
    assert "throttle: at most 0.001 batches/s" in shown.stdout and "waiting now: rate limit" in (
        shown.stdout), shown.stdout
    # When it is paused (the waiting batch is reached within one nap), and its rate lifted
    # (a limit that makes no sense refused in one line)
    paused = kgm("pause", run_id, env=env, cwd=tmp_path)
    assert paused.returncode == 0 and f"run {run_id}: paused" in paused.stdout, paused.stderr
    for bad, words in ((["--max-rate", "-1"], "max_rate: Input should be greater than 0"),
                       (["--clear", "speed"], "--clear speed: no such limit"),
                       (["--max-latency", "5", "--critical-latency", "1"],
                        "the run would stop before it ever waited"),
                       (["--max-health", "3"], "a health limit needs a health query")):
        refused = kgm("throttle", run_id, *bad, env=env, cwd=tmp_path)
        assert refused.returncode == 1 and words in refused.stderr, refused.stderr
        assert "Traceback" not in refused.stderr
    lifted = kgm("throttle", run_id, "--clear", "max-batch-rate", "--max-latency", "30",
                 "--json", env=env, cwd=tmp_path)
    assert lifted.returncode == 0, lifted.stderr
    assert json.loads(lifted.stdout)["throttle"] == {"max_latency_s": 30.0}
    # and resumed
    resumed = kgm("resume", run_id, env=env, cwd=tmp_path)
    # Then it completes under the new limits, each item changed once
    assert resumed.returncode == 0, resumed.stderr
    run = Ledger(graph).require_run(run_id)
    assert run.status is MigrationStatus.COMPLETED, run.error_log
    assert changed_once(graph) == {"once": 40, "more": 0}


def test_a_rate_lifted_while_a_batch_waits_for_a_far_turn_lets_it_start(
        execution: Execution, graph: GraphBackend) -> None:
    # Given a run at one batch per 1000 s whose second batch waits for its turn
    given_items(execution, graph, 30)
    run_id = start(graph, Throttle(max_batch_rate=FOREVER))
    waiting_for(graph, run_id, "rate limit")
    # When the rate is raised while it waits
    runs.throttle(graph, run_id, Throttle(max_batch_rate=1000))
    # Then the waiting batch takes its turn again under the new rate (not 1000 s later), and
    # the run completes
    run = runs.wait(graph, run_id, timeout_s=TIMEOUT_S)
    assert run.status is MigrationStatus.COMPLETED, run.error_log
    assert changed_once(graph) == {"once": 30, "more": 0}


# -- the limits themselves (no server) -------------------------------------------------------


def test_rate_limits_give_the_gap_between_two_batches() -> None:
    assert Throttle().seconds_per_batch(100) == 0
    assert Throttle(max_batch_rate=4).seconds_per_batch(100) == 0.25
    assert Throttle(max_rate=50).seconds_per_batch(100) == 2
    assert Throttle(max_rate=50, max_batch_rate=4).seconds_per_batch(10) == 0.25


def test_limits_that_make_no_sense_are_refused_with_the_reason() -> None:
    for fields, words in (({"max_rate": 0}, "greater than 0"),
                          ({"max_health": 3}, "needs a health query"),
                          ({"health_query": HEALTH}, "needs a limit"),
                          ({"max_latency_s": 5, "critical_latency_s": 1}, "before it ever waited"),
                          ({"max_rate": float("inf")}, "finite")):
        with pytest.raises(KgmError, match=words):
            checked(fields).require_consistent()


def test_a_change_clears_limits_first_then_sets_the_new_ones() -> None:
    current = Throttle(max_rate=10, health_query=HEALTH, max_health=5)
    changed = current.merged(Throttle(max_latency_s=2), cleared=cleared_limits(["health-query"]))
    assert changed == Throttle(max_rate=10, max_latency_s=2)
    assert current.merged(Throttle(max_rate=3)).max_rate == 3
    with pytest.raises(KgmError, match="no such limit"):
        cleared_limits(["speed"])
    # a health level alone changes the run's query's level; a new query drops the old levels
    watched = Throttle(health_query=HEALTH, max_health=5, critical_health=50)
    assert watched.merged(Throttle(max_health=8)) == Throttle(
        health_query=HEALTH, max_health=8, critical_health=50)
    assert watched.merged(Throttle(health_query="RETURN 1 AS n", max_health=3)) == Throttle(
        health_query="RETURN 1 AS n", max_health=3)
    with pytest.raises(KgmError, match="needs a limit"):
        watched.merged(Throttle(health_query="RETURN 1 AS n"))


def test_max_active_transactions_is_a_health_query_of_its_own() -> None:
    assert throttle_from(max_active_transactions=20) == Throttle(
        health_query=ACTIVE_TRANSACTIONS, max_health=20)
    with pytest.raises(KgmError, match="not both"):
        throttle_from(max_active_transactions=20, health_query=HEALTH, max_health=1)
