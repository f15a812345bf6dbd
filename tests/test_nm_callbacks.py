"""neo4j-migrations' callbacks (issue 19, item 6) through the real CLI with real workers, on
both servers: each runs at its phase, in the order of its description, with placeholders and
the line endings of neo4j-migrations' corpora; afterMigrate when the run ends (completed,
rolled back, failed and stopped), by the worker that ends it, as they were when the run
started; none is a migration (not listed, not in the chain, no checksum); a callback of a
phase kgmigrate has no verb for, or with a precondition, is refused by name before anything
is written."""

import json
from pathlib import Path
from typing import Any

from kgmigrate import runs
from kgmigrate.graph.base import GraphBackend
from kgmigrate.model.records import MigrationStatus
from tests.conftest import Execution
from tests.test_cli import run

TIMEOUT_S = 600  # a loaded machine


def counter(phase: str) -> bytes:
    return (f"MERGE (c:NmCallback {{phase: '{phase}'}}) "
            "SET c.n = coalesce(c.n, 0) + 1;\n").encode()


CALLBACKS: dict[str, bytes] = {
    **{f"{phase}.cypher": counter(phase)
       for phase in ("beforeFirstUse", "beforeMigrate", "beforeValidate", "afterValidate",
                     "beforeInfo", "afterInfo")},
    # two of one phase, run in the order of their descriptions; CRLF and CR-only files, a
    # placeholder, a comment
    "afterMigrate__2_then.cypher": b"// second\rMATCH (c:NmCallback {phase: 'afterMigrate'})"
                                   b" SET c.order = c.order + 'b';\r",
    "afterMigrate__1_first.cypher": b"MERGE (c:NmCallback {phase: 'afterMigrate'}) "
                                    b"SET c.order = coalesce(c.order, '') + 'a';\r\n"
                                    b"MATCH (c:NmCallback {phase: 'afterMigrate'}) "
                                    b"SET c.n = coalesce(c.n, 0) + 1, c.env = '${nm:env}';\r\n",
}
MIGRATION = b"CREATE (:NmMigrated);\n"
# fails its validation on every batch: the run is rolled back
FAILING = """
from kgmigrate import Migration, ops

migration = Migration(author="test", batch_size=10, steps=[
    ops.batched("NmMigrated", "SET e.x = 1", validation="e.x = 2"),
])
"""


def phases(graph: GraphBackend) -> dict[str, Any]:
    rows = graph.read("MATCH (c:NmCallback) RETURN c.phase AS phase, c.n AS n, "
                      "c.order AS order, c.env AS env").records
    return {r["phase"]: (r["n"], r["order"], r["env"]) if r["phase"] == "afterMigrate"
            else r["n"] for r in rows}


def test_callbacks_run_at_their_phases_and_are_not_migrations(
        execution: Execution, graph: GraphBackend, tmp_path: Path) -> None:
    env = {**execution.env, "KGMIGRATE_PLACEHOLDERS": '{"env": "prod"}'}

    def kgm(*args: str) -> Any:
        done = run(*args, env=env, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        return done

    # Given a graph, a versioned migration and a callback of every phase kgmigrate has
    graph.write("CREATE (:NmSeed)")
    for name, content in CALLBACKS.items():
        (execution.migrations / name).write_bytes(content)
    (execution.migrations / "V0001__migrated.cypher").write_bytes(MIGRATION)
    execution.start_worker()
    execution.wait_ready(1)

    # When the migrations are listed
    listed = json.loads(kgm("list", "--json").stdout)
    # Then the callbacks are not migrations; beforeFirstUse ran first, then the info phases
    assert [m["version"] for m in listed] == ["V0001"]
    assert phases(graph) == {"beforeFirstUse": 1, "beforeInfo": 1, "afterInfo": 1}

    # When the upgrade runs on the worker
    upgraded = kgm("upgrade", "--json")
    # Then beforeMigrate ran once, and afterMigrate once the run completed: its two files in
    # the order of their descriptions, the placeholder filled in, all three statements of
    # the CRLF and CR-only files; the run says so
    status = json.loads(upgraded.stdout)
    run_id = status["id"]
    assert status["status"] == "completed", status["error_log"]
    assert phases(graph) == {"beforeFirstUse": 2, "beforeInfo": 1, "afterInfo": 1,
                             "beforeMigrate": 1, "afterMigrate": (1, "ab", "prod")}
    assert status["callback_notes"] == [
        "afterMigrate callbacks ran: afterMigrate__1_first.cypher, afterMigrate__2_then.cypher "
        "(3 statements)"]
    assert "afterMigrate callbacks ran: afterMigrate__1_first.cypher" in kgm(
        "status", run_id).stdout
    # and the chain holds the migration only
    assert [h["version"] for h in json.loads(kgm("history", "--json").stdout)] == ["V0001"]

    # When an upgrade finds nothing to apply
    kgm("upgrade")
    # Then it ran afterMigrate itself (no run ends it)
    assert phases(graph)["afterMigrate"] == (2, "abab", "prod")

    # When a callback is edited and the migrations validated
    (execution.migrations / "afterMigrate__2_then.cypher").write_bytes(
        b"MATCH (c:NmCallback {phase: 'afterMigrate'}) SET c.order = c.order + 'c';\n")
    validated = kgm("validate")
    # Then a callback has no checksum: still valid; the validate phases ran around it
    assert validated.stdout.splitlines()[-1] == "valid: 1 applied, 0 pending"
    assert {k: v for k, v in phases(graph).items() if "Validate" in k} == {
        "beforeValidate": 1, "afterValidate": 1}

    # When a run that will fail (its validation) is started while no worker runs, and a
    # callback edited after it started
    execution.stop_all()
    (execution.migrations / "V0002__fails.py").write_text(FAILING)
    queued = kgm("upgrade", "--no-wait", "--allow-no-workers", "--json")
    run_id = json.loads(queued.stdout)["run_id"]
    (execution.migrations / "afterMigrate__2_then.cypher").write_bytes(
        b"MATCH (c:NmCallback {phase: 'afterMigrate'}) SET c.order = c.order + 'd';\n"
        b"CREATE (:NmCallback {phase: });\n")
    execution.start_worker()
    rolled = runs.wait(graph, run_id, timeout_s=TIMEOUT_S)
    # Then afterMigrate ran as the run ended, rolled back, as the callbacks were when it
    # started (the worker does not read the directory)
    assert rolled.status is MigrationStatus.ROLLED_BACK, rolled.error_log
    assert phases(graph)["afterMigrate"] == (3, "ababac", "prod")
    assert rolled.callback_notes == [
        "afterMigrate callbacks ran: afterMigrate__1_first.cypher, afterMigrate__2_then.cypher "
        "(3 statements)"]

    # When the run fails again with a worker that does not roll back, and an afterMigrate
    # callback fails
    execution.stop_all()
    execution.start_worker(env={"KGMIGRATE_AUTO_ROLLBACK": "false"})
    execution.wait_ready(1)
    failed = run("upgrade", "--json", env=env, cwd=tmp_path)
    # Then the run stopped, failed, and its afterMigrate callbacks ran up to the failing
    # statement, which its notes name; the run's outcome is its own
    assert failed.returncode != 0
    stopped = json.loads(failed.stdout)
    assert stopped["status"] == "failed" and "validation" in stopped["error_log"]
    assert phases(graph)["afterMigrate"] == (4, "ababacad", "prod")
    [note] = stopped["callback_notes"]
    assert note.startswith("afterMigrate callback afterMigrate__2_then.cypher, statement 2: ")
    assert note.endswith("(the afterMigrate statements before it ran, the rest did not)")
