"""`kgmigrate import-chain` (issue 19, item 12): the chain neo4j-migrations applied to a Neo4j
graph is adopted, so that kgmigrate applies only what comes after it. Through the real CLI and
real workers on the embedded Neo4j, with the chain written by Cypher as neo4j-migrations
leaves it; refused in one line, writing nothing, where it cannot be adopted, and on FalkorDB,
where neo4j-migrations does not run."""

import json
import re
from pathlib import Path
from typing import Any

import pytest

from kgmigrate.errors import KgmError
from kgmigrate.graph.base import GraphBackend
from kgmigrate.model import nm_checksum
from kgmigrate.service import Migrations
from tests.conftest import Execution
from tests.test_cli import run

NM_BASELINE = "CREATE (:__Neo4jMigration {version: 'BASELINE'})"
# How neo4j-migrations records a migration it applied (Migrations.recordApplication): a node
# with the migration's properties, linked from the one applied before it by MIGRATED_TO with
# when, how long, by whom and as which database user.
NM_RECORD = (
    "MATCH (p:__Neo4jMigration {version: $previous}) WHERE p.migrationTarget IS NULL "
    "CREATE (c:__Neo4jMigration) SET c = $migration "
    "MERGE (p)-[:MIGRATED_TO {at: datetime({timezone: 'UTC'}), "
    "in: duration({milliseconds: $ms}), by: $by, connectedAs: 'neo4j'}]->(c)"
)
NM_GRAPH = ("MATCH (n:__Neo4jMigration) OPTIONAL MATCH (n)-[r:MIGRATED_TO]->(m) "
            "RETURN n.version AS version, properties(n) AS node, m.version AS next, "
            "toString(r.at) AS at ORDER BY version")
KGM_NODES = ("MATCH (n) WHERE any(l IN labels(n) WHERE l STARTS WITH '__KGM') "
             "RETURN count(n) AS n")

# neo4j-migrations' own test migration, with the checksum its tests assert for it
DELETE_OLD_DATA = b"MATCH (n:BrokenData) DETACH DELETE n;"
# as neo4j-migrations applied it, and as the file is now: a precondition added since, on
# Windows (its recorded checksum is the file's "alternative checksum" now)
LABEL_COUNTER = b"MATCH (c:Counter) SET c.labelled = coalesce(c.labelled, 0) + 1;\r\n"
COUNT_UP = '''"""Was neo4j-migrations' Java migration V0002__CountUp."""
from kgmigrate import Migration, ops

migration = Migration(steps=[ops.cypher("MATCH (c:Counter) SET c.n = c.n + 1",
                                        down="MATCH (c:Counter) SET c.n = c.n - 1")])
'''


def nm_applied(graph: GraphBackend, migrations: list[dict[str, Any]], *,
               previous: str = "BASELINE") -> None:
    """The chain neo4j-migrations leaves after applying `migrations`, in that order."""
    if previous == "BASELINE":
        graph.write(NM_BASELINE)
    for i, migration in enumerate(migrations):
        graph.write(NM_RECORD, {"previous": previous, "migration": migration, "ms": 40 + i,
                                "by": "ana"})
        previous = migration["version"]


def cypher(version: str, description: str, checksum: str) -> dict[str, Any]:
    """A `.cypher` migration's node, as neo4j-migrations writes it."""
    name = description.replace(" ", "_")
    return {"version": version, "description": description, "type": "CYPHER",
            "repeatable": False, "source": f"V{version}__{name}.cypher", "checksum": checksum}


def count(graph: GraphBackend, label: str) -> int:
    return int(graph.read(f"MATCH (n:{label}) RETURN count(n) AS n").value("n"))


@pytest.mark.parametrize("server", [pytest.param("neo4j", marks=pytest.mark.neo4j)])
@pytest.mark.timeout(600)
def test_an_adopted_neo4j_migrations_chain_is_not_run_again(
        server: str, execution: Execution, graph: GraphBackend, tmp_path: Path,
        output_dir: Path) -> None:
    shown_to_people = []

    def kgm(*args: str) -> Any:
        result = run(*args, env={**execution.env, "COLUMNS": "400"}, cwd=tmp_path)
        shown_to_people.append(f"$ kgmigrate {' '.join(args)}\n{result.stdout}{result.stderr}")
        (output_dir / "import-chain.txt").write_text("\n".join(shown_to_people))
        return result

    # Given a project neo4j-migrations has applied: V0001 (its own test migration), V0002 (a
    # Java migration, rewritten as a .py one) and V0003 (a precondition added since)
    files = execution.migrations
    (files / "V0001__delete_old_data.cypher").write_bytes(DELETE_OLD_DATA)
    (files / "V0002__count_up.py").write_text(COUNT_UP)
    (files / "V0003__label_counter.cypher").write_bytes(
        b"// assume that version is ge 5.0\r\n" + LABEL_COUNTER)
    graph.write("CREATE (:Counter {n: 1, labelled: 1})")  # what V0002 and V0003 did
    nm_applied(graph, [
        cypher("0001", "delete old data", "1100083332"),
        {"version": "0002", "description": "CountUp", "type": "JAVA", "repeatable": False,
         "source": "V0002__CountUp"},  # neo4j-migrations records no checksum for Java
        cypher("0003", "label counter", nm_checksum.checksum(LABEL_COUNTER))])
    chain_before = graph.read(NM_GRAPH).records
    # and data V0001 would delete if it ran again, and two migrations written since: V0004,
    # and V0002_1, below the chain's last
    graph.write("CREATE (:BrokenData {since: 'after'})")
    (files / "V0004__after.cypher").write_text("CREATE (:NmAfter);\n")
    (files / "V0002_1__late.cypher").write_text("CREATE (:NmLate);\n")

    # When the import is shown first
    shown = kgm("import-chain", "--dry-run")
    # Then it lists the chain, each migration with its file and how its checksum compared,
    # and what `upgrade` does after it, and writes nothing
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[1] == ("import-chain would adopt the neo4j-migrations chain, 3 migrations "
                        "(nothing was written):")
    rows = [re.split(r"\s*│\s*", line.strip("│ ")) for line in lines if line.startswith("│")]
    assert [[r[0], r[1], r[2], r[3], r[5], r[6]] for r in rows] == [
        ["1", "V0001", "V0001__delete_old_data.cypher", "V0001__delete_old_data.cypher",
         "ana/neo4j", "matches the file (1100083332)"],
        ["2", "V0002", "V0002__count_up.py", "V0002__CountUp (JAVA)", "ana/neo4j",
         "not compared: a JAVA migration there, V0002__count_up.py here"],
        ["3", "V0003", "V0003__label_counter.cypher", "V0003__label_counter.cypher",
         "ana/neo4j", f"matches the file (without its preconditions) "
                      f"({nm_checksum.checksum(LABEL_COUNTER)})"]]
    assert lines[-2:] == [
        "not in the chain but below its last migration: V0002_1: `kgmigrate upgrade` refuses "
        "them as out of order unless allowed (`--out-of-order`), or skips them where an "
        "`assume` precondition does not hold",
        "after the chain, `kgmigrate upgrade` applies: V0004"]
    assert int(graph.read(KGM_NODES).value("n")) == 0
    # and so do its JSON and the Python API
    as_json = json.loads(kgm("import-chain", "--dry-run", "--json").stdout)
    assert [(a["version"], a["source"], a["type"], a["checksum"]) for a in as_json["adopted"]] == [
        ("V0001", "V0001__delete_old_data.cypher", "CYPHER", "1100083332"),
        ("V0002", "V0002__CountUp", "JAVA", None),
        ("V0003", "V0003__label_counter.cypher", "CYPHER", nm_checksum.checksum(LABEL_COUNTER))]
    with Migrations() as migrations:
        plan = migrations.import_chain(dry_run=True)
    assert plan.model_dump(mode="json") == as_json
    assert (plan.dry_run, plan.not_in_chain, plan.pending) == (True, ["V0002_1"], ["V0004"])
    assert [(a.version, a.duration_ms, a.checksum_compared) for a in plan.adopted] == [
        ("V0001", 40, True), ("V0002", 41, False), ("V0003", 42, True)]
    (files / "V0002_1__late.cypher").unlink()

    # When it is adopted
    adopted = kgm("import-chain")
    # Then kgmigrate's chain holds the three, in neo4j-migrations' order, with its times,
    # durations and user, and where each comes from; neo4j-migrations' chain is left as it is
    assert adopted.returncode == 0, adopted.stderr
    lines = adopted.stdout.splitlines()
    assert (lines[1], lines[-1]) == (
        "adopted the neo4j-migrations chain, 3 migrations, as kgmigrate's chain (its "
        ":__Neo4jMigration nodes are left as they are):",
        "after the chain, `kgmigrate upgrade` applies: V0004")
    assert [line.split("│")[2].strip() for line in lines if line.startswith("│")] == [
        "V0001", "V0002", "V0003"]
    assert graph.read(NM_GRAPH).records == chain_before
    history = json.loads(kgm("history", "--json").stdout)
    assert [(h["sequence"], h["version"], h["state"], h["run_id"], h["applied_by"],
             h["duration_ms"], h["adopted"]["tool"], h["adopted"]["source"],
             h["adopted"]["checksum"], h["adopted"]["checksum_compared"]) for h in history] == [
        (1, "V0001", "applied", None, "ana/neo4j", 40, "neo4j-migrations",
         "V0001__delete_old_data.cypher", "1100083332", True),
        (2, "V0002", "applied", None, "ana/neo4j", 41, "neo4j-migrations", "V0002__CountUp",
         None, False),
        (3, "V0003", "applied", None, "ana/neo4j", 42, "neo4j-migrations",
         "V0003__label_counter.cypher", nm_checksum.checksum(LABEL_COUNTER), True)]
    applied_at = {f"V{r['next']}": r["at"][:19] for r in chain_before if r["next"]}
    assert {h["version"]: h["applied_at"][:19] for h in history} == applied_at
    human = kgm("history")
    assert re.search(r"│ 2 +│ V0002 +│ count up \(adopted from neo4j-migrations: "
                     r"V0002__CountUp\) .*│ ana/neo4j +│ import-chain +│",
                     human.stdout), human.stdout
    listed = {m["version"]: m["state"] for m in json.loads(kgm("list", "--json").stdout)}
    assert listed == {"V0001": "applied", "V0002": "applied", "V0003": "applied",
                      "V0004": "pending"}
    valid = kgm("validate")
    assert (valid.returncode, valid.stdout.splitlines()[-1]) == (
        0, "valid: 3 applied, 1 pending")
    # and a second import is refused, in one line
    again = kgm("import-chain")
    assert (again.returncode, again.stderr) == (1, (
        f"kgmigrate: error: kgmigrate's chain on {graph.target.display} already has 3 entries "
        "(applied: V0001, V0002, V0003); import-chain adopts a neo4j-migrations chain into an "
        "empty one only, so that nothing is recorded or run twice\n"))

    # When the graph is upgraded
    upgraded = kgm("upgrade", "--local-workers", "1")
    # Then only what comes after the chain runs: V0001 deletes nothing, V0002 and V0003 do
    # not count again
    assert upgraded.returncode == 0, upgraded.stderr
    status = json.loads(kgm("status", "--json").stdout)
    assert (status["status"], status["migrations"]) == ("completed", ["V0004"])
    assert (count(graph, "BrokenData"), count(graph, "NmAfter")) == (1, 1)
    assert graph.read("MATCH (c:Counter) RETURN c.n AS n, c.labelled AS l").single() == {
        "n": 1, "l": 1}
    history = json.loads(kgm("history", "--json").stdout)
    assert [(h["version"], h["run_id"], h["adopted"] is not None) for h in history] == [
        ("V0001", None, True), ("V0002", None, True), ("V0003", None, True),
        ("V0004", status["id"], False)]


@pytest.mark.parametrize("server", [pytest.param("neo4j", marks=pytest.mark.neo4j)])
@pytest.mark.timeout(600)
def test_a_chain_that_cannot_be_adopted_is_refused_in_one_line_writing_nothing(
        server: str, execution: Execution, graph: GraphBackend, tmp_path: Path) -> None:
    where = graph.target.display

    def refused(*args: str) -> str:
        """The one line `import-chain` (and its dry run) fails with; nothing was written."""
        lines = set()
        for dry in ([], ["--dry-run"]):
            result = run("import-chain", *args, *dry, env=execution.env, cwd=tmp_path)
            assert result.returncode == 1, result.stdout
            assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
            lines.add(result.stderr)
        assert len(lines) == 1
        assert int(graph.read(KGM_NODES).value("n")) == 0
        return lines.pop().removeprefix("kgmigrate: error: ").rstrip("\n")

    files = execution.migrations
    (files / "V0001__delete_old_data.cypher").write_bytes(DELETE_OLD_DATA)
    # Given a graph neo4j-migrations never ran on
    assert refused() == (
        f"no neo4j-migrations chain on {where}: it has no :__Neo4jMigration nodes (a chain "
        "neo4j-migrations kept in a separate schema database is not read: run import-chain "
        "against a graph that holds its own chain)")
    # Given a graph that is the schema database of another one
    graph.write("CREATE (:__Neo4jMigration {version: 'BASELINE', migrationTarget: 'movies'})")
    assert refused() == (
        f"the :__Neo4jMigration nodes on {where} are neo4j-migrations chains of other "
        "databases (migrationTarget movies): this is their schema database. kgmigrate keeps a "
        "graph's chain in the graph itself and adopts the chain kept in the graph it migrates "
        "only")
    graph.write("MATCH (n:__Neo4jMigration) DELETE n")
    # Given neo4j-migrations' chain, and neo4j-migrations holding its lock
    nm_applied(graph, [cypher("0001", "delete old data", "1100083332")])
    graph.write("CREATE (:__Neo4jMigrationsLock {id: 'x', name: 'John Doe'})")
    assert refused() == (
        f"neo4j-migrations holds its lock on {where} (a :__Neo4jMigrationsLock node): it may "
        "be migrating this graph now; wait until it is done (a lock it left behind when it "
        "crashed is cleared by its `unlock`)")
    graph.write("MATCH (l:__Neo4jMigrationsLock) DELETE l")
    # Given a chain that has a migration kgmigrate has no file for
    nm_applied(graph, [cypher("0002", "gone", "42"), cypher("0003", "gone too", "43")],
               previous="0001")
    assert refused() == (
        f"the neo4j-migrations chain on {where} has V0002 (V0002__gone.cypher), V0003 "
        f"(V0003__gone_too.cypher) applied, but {files} has no file for them: put them there "
        "(a .cypher file as it was applied, or a .py one with the same version) before "
        "adopting the chain")
    graph.write("MATCH (n:__Neo4jMigration) WHERE n.version IN ['0002', '0003'] "
                "DETACH DELETE n")
    # Given a file that is not the one neo4j-migrations applied
    (files / "V0001__delete_old_data.cypher").write_bytes(
        b"MATCH (n:BrokenData) WHERE n.old DETACH DELETE n;")
    edited = nm_checksum.checksum((files / "V0001__delete_old_data.cypher").read_bytes())
    assert refused() == (
        f"not the files neo4j-migrations applied on {where}: V0001__delete_old_data.cypher "
        f"(applied as V0001__delete_old_data.cypher) has checksum {edited}, not 1100083332 "
        "(neo4j-migrations' CRC32 of the statements); restore them as they were applied: "
        "import-chain records them as applied without running them")
    (files / "V0001__delete_old_data.cypher").write_bytes(DELETE_OLD_DATA)
    # Given a chain with a repeatable migration
    nm_applied(graph, [{**cypher("0002", "refresh", "7"), "repeatable": True,
                        "source": "R0002__refresh.cypher"}], previous="0001")
    assert refused() == (
        f"the neo4j-migrations chain on {where} holds repeatable migrations "
        "(R0002__refresh.cypher), which import-chain does not adopt (their repeats are not "
        "read); it cannot take over this chain")


@pytest.mark.parametrize("server", ["falkordb"])
def test_import_chain_is_refused_on_falkordb(
        server: str, execution: Execution, graph: GraphBackend, tmp_path: Path) -> None:
    # Given a FalkorDB graph with nodes shaped like neo4j-migrations' chain (copied there:
    # neo4j-migrations itself runs on Neo4j only), and the migration's file
    (execution.migrations / "V0001__delete_old_data.cypher").write_bytes(DELETE_OLD_DATA)
    graph.write("CREATE (:__Neo4jMigration {version: 'BASELINE'})-[:MIGRATED_TO "
                "{at: '2024-05-06T07:08:09Z', by: 'ana', connectedAs: 'neo4j'}]->"
                "(:__Neo4jMigration {version: '0001', description: 'delete old data', "
                "type: 'CYPHER', repeatable: false, source: 'V0001__delete_old_data.cypher', "
                "checksum: '1100083332'})")
    refusal = (f"import-chain adopts the chain neo4j-migrations keeps in a Neo4j graph; "
               f"{graph.target.display} is FalkorDB, which neo4j-migrations does not run on, so "
               "no chain of its is there to adopt (`kgmigrate upgrade` applies the migrations)")
    # When it is imported (or shown)
    for dry in ([], ["--dry-run"]):
        result = run("import-chain", *dry, env=execution.env, cwd=tmp_path)
        # Then it is refused in one line, and nothing is written
        assert (result.returncode, result.stderr) == (1, f"kgmigrate: error: {refusal}\n")
    with Migrations() as migrations, pytest.raises(KgmError) as failure:
        migrations.import_chain()
    assert str(failure.value) == refusal
    assert int(graph.read(KGM_NODES).value("n")) == 0
    assert int(graph.read("MATCH (n) RETURN count(n) AS n").value("n")) == 2
