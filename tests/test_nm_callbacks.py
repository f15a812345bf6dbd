"""neo4j-migrations' callbacks (issue 19, item 6) through the real CLI with real workers, on
both servers: each runs at its phase, in the order of its description, with placeholders and
the line endings of neo4j-migrations' corpora; afterMigrate when the run ends, whatever its
outcome, by the worker that ends it; none is a migration (not listed, not in the chain, no
checksum); a callback of a phase kgmigrate has no verb for, or with a precondition, is
refused by name before anything is written."""

import json
from pathlib import Path
from typing import Any

from kgmigrate.fingerprint import fingerprint
from kgmigrate.graph.base import GraphBackend
from tests.conftest import Execution
from tests.test_cli import run


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
    assert status["callbacks"] == [
        "afterMigrate: afterMigrate__1_first.cypher, afterMigrate__2_then.cypher ran "
        "(3 statements)"]
    assert "callback afterMigrate: afterMigrate__1_first.cypher" in kgm(
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

    # When a run fails (its validation) and is rolled back
    (execution.migrations / "V0002__fails.py").write_text(FAILING)
    failed = run("upgrade", "--json", env=env, cwd=tmp_path)
    assert failed.returncode != 0
    rolled = json.loads(failed.stdout)
    # Then afterMigrate ran as it ended, as the run was when it started (the edited file)
    assert rolled["status"] == "rolled_back", rolled["error_log"]
    assert phases(graph)["afterMigrate"] == (3, "ababac", "prod")
    assert rolled["callbacks"] == [
        "afterMigrate: afterMigrate__1_first.cypher, afterMigrate__2_then.cypher ran "
        "(3 statements)"]


def test_a_callback_kgmigrate_cannot_run_is_refused_by_name_before_anything_is_written(
        execution: Execution, graph: GraphBackend, tmp_path: Path) -> None:
    # Given a graph and a migration
    (execution.migrations / "V0001__migrated.cypher").write_bytes(MIGRATION)
    before = fingerprint(graph)
    for name, content, words in (
            # a phase of a verb kgmigrate has not
            ("beforeClean.cypher", counter("beforeClean"),
             "beforeClean.cypher: kgmigrate has no clean verb, so this callback would never "
             "run"),
            # a precondition, which only a migration has
            ("beforeMigrate__guarded.cypher",
             b"// assume that edition is enterprise\n" + counter("beforeMigrate"),
             "beforeMigrate__guarded.cypher: `// assume that edition is enterprise`: a "
             "callback has no preconditions"),
            # a placeholder without a value
            ("afterMigrate.cypher", b"CREATE (:NmCallback {env: '${nm:nowhere}'});\n",
             "afterMigrate.cypher: placeholder ${nm:nowhere} has no value"),
            # a statement the server refuses: the verb stops at the callback, naming it
            ("beforeMigrate.cypher", b"CREATE (:NmCallback {phase: });\n",
             "beforeMigrate callback beforeMigrate.cypher, statement 1: ")):
        path = execution.migrations / name
        path.write_bytes(content)
        # When an upgrade is asked for
        refused = run("upgrade", "--local-workers", "1", env=execution.env, cwd=tmp_path)
        # Then it is refused in one line naming the file, and nothing was written
        assert refused.returncode == 1, refused.stdout
        assert words in refused.stderr and "Traceback" not in refused.stderr, refused.stderr
        assert fingerprint(graph) == before
        assert int(graph.read("MATCH (r:__KGMRun) RETURN count(r) AS n").value("n")) == 0
        path.unlink()
