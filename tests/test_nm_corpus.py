"""A neo4j-migrations project through the real CLI with real workers, on both servers (issue 19,
items 1, 2, 3, 4, 7, 9, 10 and 11): a corpus of our own with the features of neo4j-migrations'
test corpora (CR-only and CRLF files, preconditions true and false, assume and assert, on
edition, version and a query, placeholders, a nested location, a catalog migration,
`CALL { ... } IN TRANSACTIONS`, `:use` and `USING PERIODIC COMMIT`), each with the outcome
neo4j-migrations documents, or refused by name where kgmigrate does not support it."""

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from kgmigrate.errors import KgmError
from kgmigrate.fingerprint import fingerprint
from kgmigrate.graph.base import GraphBackend
from tests.conftest import Execution
from tests.test_cli import run

CORPUS: dict[str, bytes] = {
    # neo4j-migrations' V0001__mac.cypher: old-Mac line endings, a comment between statements
    "V0001__mac.cypher": b"// written on an old Mac\rCREATE (:NmMac {i: 1});\r// note\r"
                         b"CREATE (:NmMac {i: 2});\rCREATE (:NmMac {i: 3});\r",
    "V0002__windows.cypher": b"// description: a CRLF file\r\nCREATE (:NmCrlf {s: 'a;b // c'});"
                             b"\r\nCREATE (:NmCrlf {s: 'd'});\r\n",
    # skipped on both: the embedded Neo4j is Community, FalkorDB is not Neo4j
    "V0003__enterprise_only.cypher": b"// assume that edition is enterprise\n"
                                     b"CREATE (:NmEnterprise);\n",
    # applied on Neo4j 5, skipped on FalkorDB
    "V0004__neo4j_5.cypher": b"// assume that version is ge 5.0\n// assert q' RETURN true\n"
                             b"CREATE (:NmNeo4j5);\n",
    # false before the run (there are seeds): skipped; true once they are gone
    "V0005__no_seeds_yet.cypher": b"// assume q' MATCH (s:NmSeed) RETURN count(s) = 0\n"
                                  b"CREATE (:NmNoSeeds);\n",
    "V0006__seeded.cypher": b"// assert q' MATCH (s:NmSeed) RETURN count(s) = 5\n"
                            b"// ASSUME in target q' MATCH (s:NmSeed) RETURN count(s) > 0\n"
                            b"MATCH (s:NmSeed) SET s.seen = true;\n",
    "V0007__placeholders.cypher": b"CREATE (:`${nm:testLabel}` {env: '${nm:env}'});\n",
}
PLACEHOLDERS = {"KGMIGRATE_PLACEHOLDERS": '{"env": "prod"}',
                "NM_PLACEHOLDERS_testLabel": "NmPlaced"}


def count(graph: GraphBackend, label: str) -> int:
    return int(graph.read(f"MATCH (n:{label}) RETURN count(n) AS n").value("n"))


def everything(graph: GraphBackend) -> tuple[int, Any]:
    """The whole graph, ledger included (a node count), and the user graph (fingerprint)."""
    return int(graph.read("MATCH (n) RETURN count(n) AS n").value("n")), fingerprint(graph)


@pytest.mark.timeout(900)
def test_a_neo4j_migrations_corpus_runs_with_its_documented_outcomes(
        server: str, execution: Execution, graph: GraphBackend, tmp_path: Path) -> None:
    env = {**execution.env, **PLACEHOLDERS}

    def kgm(*args: str, **more: str) -> Any:
        return run(*args, env={**env, **more}, cwd=tmp_path)

    info = graph.server_info()
    falkordb = server == "falkordb"
    not_neo4j = (f": the server is {info.version}, not Neo4j (edition and version "
                 "preconditions ask about Neo4j)")
    on_server = not_neo4j if falkordb else f" on {info.version}"
    skipped = {
        "V0003": f"`assume that edition is enterprise` does not hold{on_server}",
        **({"V0004": f"`assume that version is ge 5.0` does not hold{not_neo4j}"}
           if falkordb else {}),
        "V0005": "`assume q' MATCH (s:NmSeed) RETURN count(s) = 0` is false on this graph",
    }
    applied = [v for v in ("V0001", "V0002", "V0003", "V0004", "V0005", "V0006", "V0007")
               if v not in skipped]
    # Given a graph with five seeds, and the corpus in the migrations directory
    graph.write("UNWIND range(1, 5) AS i CREATE (:NmSeed {i: i})")
    for name, content in CORPUS.items():
        (execution.migrations / name).write_bytes(content)

    # When it is planned
    planned = kgm("plan", "--json")
    # Then the plan shows what runs and what the preconditions skip, counted before the run
    assert planned.returncode == 0, planned.stderr
    plan = {m["version"]: m for m in json.loads(planned.stdout)}
    assert sorted(plan) == sorted([*applied, *skipped])
    assert {v: m["skipped"] for v, m in plan.items() if m["skipped"]} == skipped
    assert [len(plan[v]["steps"]) for v in applied] == [3, 2, *([1] if not falkordb else []),
                                                        1, 1]
    human = kgm("plan", COLUMNS="400")
    assert human.returncode == 0, human.stderr
    assert re.search(r"V0003 .*enterprise only .*skipped .*`assume that edition is",
                     human.stdout), human.stdout

    # When it is applied by a worker
    upgraded = kgm("upgrade", "--local-workers", "1")
    # Then each skipped migration is said so, and the run completes
    assert upgraded.returncode == 0, upgraded.stderr
    lines = upgraded.stdout.splitlines()
    assert [line for line in lines if " skipped: " in line] == [
        f"{v} skipped: {why}" for v, why in skipped.items()]
    assert re.fullmatch(r"run \S+: completed  upgrade", lines[-1]), lines[-1]
    # and the graph holds what neo4j-migrations would have written: all three statements of
    # the CR-only file, both of the CRLF one, nothing of the skipped ones, the placeholders
    # filled in
    assert count(graph, "NmMac") == 3
    assert sorted(graph.read("MATCH (n:NmCrlf) RETURN n.s AS s").column("s")) == [
        "a;b // c", "d"]
    assert count(graph, "NmEnterprise") == 0
    assert count(graph, "NmNeo4j5") == (0 if falkordb else 1)
    assert count(graph, "NmNoSeeds") == 0
    assert graph.read("MATCH (s:NmSeed) RETURN collect(DISTINCT s.seen) AS s").value(
        "s") == [True]
    assert graph.read("MATCH (n:NmPlaced) RETURN n.env AS env").column("env") == ["prod"]
    assert count(graph, "`${nm:testLabel}`") == 0
    # and no precondition reached the server: the run's statements are the files' others
    status = json.loads(kgm("status", "--json").stdout)
    assert status["migrations"] == applied
    sent = [step["spec"]["statement"] for step in status["steps"]]
    assert len(sent) == len([s for v in applied for s in plan[v]["steps"]])
    assert not [s for s in sent if re.search(r"assume|assert", s, re.IGNORECASE)]
    assert sent[:3] == ["// written on an old Mac\nCREATE (:NmMac {i: 1})",
                        "// note\nCREATE (:NmMac {i: 2})", "CREATE (:NmMac {i: 3})"]
    # and the chain records the skipped ones as skipped, with why, in `list` and `history`
    listed = {m["version"]: m for m in json.loads(kgm("list", "--json").stdout)}
    assert {v: m["state"] for v, m in listed.items()} == {
        **dict.fromkeys(applied, "applied"), **dict.fromkeys(skipped, "skipped")}
    assert {v: m["reason"] for v, m in listed.items() if m["reason"]} == skipped
    history = json.loads(kgm("history", "--json").stdout)
    assert [(h["version"], h["state"]) for h in history] == [
        *[(v, "skipped") for v in skipped], *[(v, "applied") for v in applied]]
    assert {h["run_id"] for h in history} == {status["id"]}
    assert {h["version"]: h["reason"] for h in history if h["reason"]} == skipped
    shown = kgm("history", COLUMNS="400")  # a wide table, not cut to 80 columns
    assert re.search(r"V0003 .*\(skipped: `assume that edition is enterprise` does not "
                     r"hold", shown.stdout), shown.stdout
    validated = kgm("validate")
    assert (validated.returncode, validated.stdout.splitlines()[-1]) == (
        0, f"valid: {len(applied)} applied, 0 pending, {len(skipped)} skipped")

    # When it is upgraded again, the preconditions unchanged
    again = kgm("upgrade", "--local-workers", "1")
    # Then nothing runs and nothing new is recorded: the skipped ones stay skipped
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[-1] == "Nothing to apply: the graph is up to date."
    assert " skipped: " not in again.stdout
    assert json.loads(kgm("history", "--json").stdout) == history

    # When a new migration asserts what does not hold
    (execution.migrations / "V0008__enterprise_required.cypher").write_text(
        "// assert that edition is enterprise\nCREATE (:NmNever);\n")
    before = everything(graph)
    # Then plan and upgrade refuse it in one line naming the file and the precondition,
    # before anything is written (no run, no chain link, no data)
    refusal = ("kgmigrate: error: V0008__enterprise_required.cypher: precondition `assert "
               f"that edition is enterprise` does not hold{on_server}\n")
    for verb in ("plan", "upgrade"):
        refused = kgm(verb)
        assert (refused.returncode, refused.stderr) == (1, refusal), verb
    assert everything(graph) == before
    assert json.loads(kgm("status", "--json").stdout)["id"] == status["id"]
    # and validate reports it
    invalid = kgm("validate")
    assert invalid.returncode == 1
    assert invalid.stdout.splitlines()[1] == refusal.removeprefix(
        "kgmigrate: error: ").replace("V0008__", "V0008: V0008__", 1).rstrip("\n")
    (execution.migrations / "V0008__enterprise_required.cypher").unlink()

    # When a migration below the applied ones is added, and the seeds are removed so that
    # V0005's assumption holds now (preconditions are evaluated again at each upgrade)
    (execution.migrations / "V0002_1__late.cypher").write_text("CREATE (:NmLate);\n")
    graph.write("MATCH (s:NmSeed) DELETE s")
    before = everything(graph)
    # Then plan and upgrade refuse both, naming each and the applied one after it
    hint = ("kgmigrate applies migrations in order: allow it with `--out-of-order` "
            "(KGMIGRATE_OUT_OF_ORDER=true), or give it a version above the applied ones")
    out_of_order = [
        "V0002_1 (V0002_1__late.cypher) is pending but V0007, which comes after it, is already "
        f"applied; {hint}",
        "V0005 (V0005__no_seeds_yet.cypher) is pending (skipped earlier by a precondition that "
        f"holds now) but V0007, which comes after it, is already applied; {hint}"]
    for verb in ("plan", "upgrade"):
        refused = kgm(verb)
        assert (refused.returncode, refused.stderr) == (
            1, f"kgmigrate: error: {'; '.join(out_of_order)}\n"), verb
    assert everything(graph) == before
    # and validate reports them
    invalid = kgm("validate")
    assert invalid.returncode == 1
    assert invalid.stdout.splitlines()[1:3] == [
        f"V0002_1: {out_of_order[0]}", f"V0005: {out_of_order[1]}"]
    # When out-of-order runs are allowed, by the setting or the flag
    allowed = kgm("plan", "--json", KGMIGRATE_OUT_OF_ORDER="true")
    assert allowed.returncode == 0, allowed.stderr
    assert [m["version"] for m in json.loads(allowed.stdout) if not m["skipped"]] == [
        "V0002_1", "V0005"]
    done = kgm("upgrade", "--out-of-order", "--local-workers", "1")
    # Then both run, after what is applied
    assert done.returncode == 0, done.stderr
    assert (count(graph, "NmLate"), count(graph, "NmNoSeeds")) == (1, 1)
    listed = {m["version"]: m["state"] for m in json.loads(kgm("list", "--json").stdout)}
    assert (listed["V0002_1"], listed["V0005"], listed["V0003"]) == (
        "applied", "applied", "skipped")
    chain = [(h["version"], h["state"]) for h in json.loads(kgm("history", "--json").stdout)]
    assert chain[-2:] == [("V0002_1", "applied"), ("V0005", "applied")]
    assert ("V0005", "skipped") in chain

    # When files neo4j-migrations reads but kgmigrate does not are added: a nested location,
    # a catalog migration; or a placeholder has no value
    nested = execution.migrations / "moreStuff"
    nested.mkdir()
    (nested / "V0009__nested.cypher").write_text("CREATE (:NmNested);\n")
    before = everything(graph)
    # Then every command refuses them by name, in one line, and writes nothing
    for verb in ("list", "upgrade"):
        refused = kgm(verb)
        assert (refused.returncode, refused.stderr) == (1, (
            "kgmigrate: error: moreStuff/V0009__nested.cypher: migrations in subfolders of "
            f"{execution.migrations} are not supported (kgmigrate reads that directory only, "
            "not its subfolders); move them into it, one file per version\n")), verb
    shutil.rmtree(nested)
    (execution.migrations / "V0009__Create_constraints.xml").write_text("<migration/>\n")
    for verb in ("list", "upgrade"):
        refused = kgm(verb)
        assert (refused.returncode, refused.stderr) == (1, (
            "kgmigrate: error: V0009__Create_constraints.xml: catalog-based (.xml) migrations "
            "of neo4j-migrations are not supported; write it as a .cypher migration (or a .py "
            "one with ops.create_index / ops.drop_index for its indexes and constraints)\n")), verb
    (execution.migrations / "V0009__Create_constraints.xml").unlink()
    unset = {k: v for k, v in env.items() if k != "NM_PLACEHOLDERS_testLabel"}
    for verb in ("upgrade",):
        refused = run(verb, env=unset, cwd=tmp_path)
        assert (refused.returncode, refused.stderr) == (1, (
            "kgmigrate: error: V0007__placeholders.cypher: placeholder ${nm:testLabel} has no "
            "value: set it in KGMIGRATE_PLACEHOLDERS (a JSON object) or as "
            "NM_PLACEHOLDERS_testLabel\n")), verb
    assert everything(graph) == before


@pytest.mark.parametrize(("query", "problem"), [
    ("CREATE (n:NmSneaky) RETURN true", "could not be evaluated (it must be a read-only query)"),
    ("MATCH (n:NmNone) RETURN count(n)", "must return one boolean, got 0"),
    ("UNWIND [true, false] AS b RETURN b", "must return one boolean, got 2 rows"),
    ("RETURN 'yes'", "must return one boolean, got 'yes'"),
])
def test_a_precondition_query_runs_read_only_and_must_return_one_boolean(
        graph: GraphBackend, tmp_path: Path, query: str, problem: str) -> None:
    """A `q'` precondition is a read: on both servers a query that writes is refused by the
    server (a read transaction on Neo4j, GRAPH.RO_QUERY on FalkorDB), and anything but one
    boolean is an error naming the file, not a false assumption."""
    from kgmigrate.model.registry import Registry
    from kgmigrate.preflight import preflight

    (tmp_path / "V0001__q.cypher").write_text(f"// assume q' {query}\nCREATE (:NmNever);\n")
    checked = preflight(graph, Registry.load(tmp_path))
    assert [(p.version, p.kind) for p in checked.problems] == [("V0001", "precondition")]
    assert checked.problems[0].message.startswith(
        f"V0001__q.cypher: precondition `assume q' {query}` {problem}")
    assert (checked.run, checked.skips) == ([], [])
    assert count(graph, "NmSneaky") == 0


# -- statements that commit as they go (item 10), `:use` and periodic commit (item 11) -----

TOUCH = "MATCH (n:NmBatch) CALL (n) { SET n.touched = true } IN TRANSACTIONS OF 10 ROWS"
UNTOUCH = "MATCH (n:NmBatch) CALL (n) { REMOVE n.touched } IN TRANSACTIONS OF 10 ROWS"
COMMITS_AS_IT_GOES = (
    "// description: touch in batches\n"
    "// neo4j-migrations runs this one in an implicit transaction too\n"
    f"{TOUCH};\n// kgmigrate:down\n{UNTOUCH};\n")
# row 55 divides by zero: the inner transactions of rows 1-50 commit before it fails
FAILS_MIDWAY = ("MATCH (n:NmBatch) WITH n ORDER BY n.i "
                "CALL (n) { SET n.fixed = 1 / (n.i - 55) } IN TRANSACTIONS OF 10 ROWS;\n")


@pytest.mark.timeout(900)
def test_call_in_transactions_runs_in_an_implicit_transaction_where_the_server_has_one(
        server: str, execution: Execution, graph: GraphBackend, tmp_path: Path) -> None:
    """Issue 19, item 10: Neo4j refuses `CALL { ... } IN TRANSACTIONS` in the managed
    transaction kgmigrate ran every statement in; FalkorDB has no such thing."""
    def kgm(*args: str) -> Any:
        return run(*args, env=execution.env, cwd=tmp_path)

    # Given 100 nodes, and a migration that touches them ten per inner transaction, with a
    # down section that does the same
    graph.write("UNWIND range(1, 100) AS i CREATE (:NmBatch {i: i})")
    (execution.migrations / "V0001__touch_in_batches.cypher").write_text(COMMITS_AS_IT_GOES)

    if server == "falkordb":
        before = everything(graph)
        # When it is listed, planned or applied on FalkorDB
        for verb in ("list", "plan", "upgrade"):
            refused = kgm(verb)
            # Then each refuses it in one line naming the file, the step and what to use
            assert (refused.returncode, refused.stderr) == (1, (
                "kgmigrate: error: V0001__touch_in_batches.cypher: step 1 (MATCH (n:NmBatch) "
                "CALL (n) { SET n.touched = true } IN TRANSACTIONS OF …): "
                "`CALL { ... } IN TRANSACTIONS` needs an implicit transaction, which "
                f"{graph.server_info().version} does not have; write it as a batched step "
                "instead, `ops.batched(label, apply)` in a .py migration, which kgmigrate "
                "commits batch by batch\n")), verb
        # and nothing was written or locked: no run, no lock, no chain, the nodes untouched
        assert everything(graph) == before
        return

    # When it is applied on Neo4j by a worker
    upgraded = kgm("upgrade", "--local-workers", "1")
    # Then the statement ran (in an implicit transaction: a managed one is refused), every
    # node is touched, and the migration is recorded applied
    assert upgraded.returncode == 0, upgraded.stderr
    assert re.fullmatch(r"run \S+: completed  upgrade", upgraded.stdout.splitlines()[-1])
    assert graph.read("MATCH (n:NmBatch) RETURN count(n.touched) AS n").value("n") == 100
    listed = json.loads(kgm("list", "--json").stdout)
    assert [(m["version"], m["state"]) for m in listed] == [("V0001", "applied")]
    status = json.loads(kgm("status", "--json").stdout)
    assert [s["spec"]["statement"] for s in status["steps"]] == [
        "// description: touch in batches\n// neo4j-migrations runs this one in an implicit "
        f"transaction too\n{TOUCH}"]
    assert status["steps"][0]["counters"].get("properties_set") == 100

    # When it is downgraded
    undone = kgm("downgrade", "base", "--local-workers", "1")
    # Then its down section ran, in an implicit transaction too, and it is pending again
    assert undone.returncode == 0, undone.stderr
    assert graph.read("MATCH (n:NmBatch) RETURN count(n.touched) AS n").value("n") == 0
    listed = json.loads(kgm("list", "--json").stdout)
    assert [(m["version"], m["state"]) for m in listed] == [("V0001", "pending")]

    # When a later migration's statement fails midway, in the run that applies both
    (execution.migrations / "V0002__fails_midway.cypher").write_text(FAILS_MIDWAY)
    failed = kgm("upgrade", "--local-workers", "1")
    # Then the run fails and rolls back: V0001's down section undoes it, and the error says
    # that what the failed statement's inner transactions committed stays (rows 1 to 50)
    assert failed.returncode == 1
    run_id = json.loads(kgm("status", "--json").stdout)["id"]
    assert failed.stdout.splitlines()[-2] == f"run {run_id}: rolled_back  upgrade"
    error = failed.stdout.splitlines()[-1]
    head, _, cause = error.partition("Neo4j refused the statement: ")
    assert head == ("  step 2 (MATCH (n:NmBatch) WITH n ORDER BY n.i CALL (n) { SET n.fixed = 1 "
                    "/ (n.i…): statement failed: "), error
    assert "/ by zero" in cause, error
    assert cause.endswith("; `CALL { ... } IN TRANSACTIONS` commits as it goes: what its inner "
                          "transactions committed before the error stays in the graph"), error
    assert graph.read("MATCH (n:NmBatch) RETURN count(n.touched) AS touched, "
                      "collect(n.fixed) AS fixed").records == [{"touched": 0,
                                                                 "fixed": [0] * 50}]
    listed = json.loads(kgm("list", "--json").stdout)
    assert [(m["version"], m["state"]) for m in listed] == [("V0001", "pending"),
                                                            ("V0002", "pending")]


@pytest.mark.parametrize(("text", "line", "why"), [
    ("// users live in the system database\n:use system;\n"
     "CREATE USER ana SET PASSWORD 'secret' CHANGE NOT REQUIRED;\n", 2,
     "`:use system` is not Cypher: it switches the database in cypher-shell and "
     "neo4j-migrations, and kgmigrate migrates one database, the one KGMIGRATE_GRAPH_URL "
     "names; remove the line (another database's migrations go in a migrations directory of "
     "their own, run against it)"),
    ("USING PERIODIC COMMIT 500\nLOAD CSV FROM 'file:///users.csv' AS row\n"
     "CREATE (:NmUser {name: row[0]});\n", 1,
     "`USING PERIODIC COMMIT` is not supported: Neo4j 5 removed it (and FalkorDB never had "
     "it); write `CALL { ... } IN TRANSACTIONS OF n ROWS` instead (Neo4j), or a batched step, "
     "`ops.batched` in a .py migration"),
])
def test_a_use_line_or_periodic_commit_is_refused_by_line_before_anything_is_written(
        execution: Execution, graph: GraphBackend, tmp_path: Path, text: str, line: int,
        why: str) -> None:
    """Issue 19, item 11 (and 10's `USING PERIODIC COMMIT`): neither is sent to the server."""
    # Given a plain migration, and one with a `:use` line (or periodic commit) after it
    (execution.migrations / "V0001__plain.cypher").write_text("CREATE (:NmPlain);\n")
    (execution.migrations / "V0002__admin.cypher").write_text(text)
    before = everything(graph)
    # When it is listed or applied
    for command in (["list"], ["upgrade", "--local-workers", "1"]):
        refused = run(*command, env=execution.env, cwd=tmp_path)
        # Then it is refused in one line naming the file and the line
        assert (refused.returncode, refused.stderr) == (
            1, f"kgmigrate: error: V0002__admin.cypher:{line}: {why}\n"), command
    # and nothing was written, not even the plain migration before it
    assert everything(graph) == before
    assert count(graph, "NmPlain") == 0


@pytest.mark.parametrize(("name", "text", "where"), [
    ("V0001__down_only.cypher",
     f"MATCH (n:NmBatch) SET n.touched = true;\n// kgmigrate:down\n{UNTOUCH};\n",
     "V0001__down_only.cypher: down step 1 (MATCH (n:NmBatch) CALL (n) { REMOVE n.touched } "
     "IN TRANSACTIONS OF 10 R…)"),
    ("V0001__in_python.py",
     "from kgmigrate import Migration, ops\n"
     f"migration = Migration(steps=[ops.cypher({TOUCH!r})])\n",
     "V0001__in_python.py: step 1 (MATCH (n:NmBatch) CALL (n) { SET n.touched = true } IN "
     "TRANSACTIONS OF …)"),
    ("V0001__python_down.py",
     "from kgmigrate import Migration, ops\nmigration = Migration(steps=[ops.cypher("
     f"'MATCH (n:NmBatch) SET n.touched = true', down={UNTOUCH!r})])\n",
     "V0001__python_down.py: step 1 (MATCH (n:NmBatch) SET n.touched = true), its down "
     "statement"),
])
def test_an_implicit_statement_is_refused_wherever_it_is_on_a_server_without_them(
        graph: GraphBackend, tmp_path: Path, name: str, text: str, where: str) -> None:
    """What every command checks as the migrations load (`Migrations.registry()`): on
    FalkorDB a down section, an `ops.cypher` statement and its `down` are refused by name, on
    Neo4j they are taken."""
    from kgmigrate.checks import check_values
    from kgmigrate.model.registry import Registry

    (tmp_path / name).write_text(text)
    registry = Registry.load(tmp_path)
    if graph.dialect.implicit_transactions:
        check_values(graph, registry)
        return
    with pytest.raises(KgmError) as refused:
        check_values(graph, registry)
    assert str(refused.value) == (
        f"{where}: `CALL {{ ... }} IN TRANSACTIONS` needs an implicit transaction, which "
        f"{graph.server_info().version} does not have; write it as a batched step instead, "
        "`ops.batched(label, apply)` in a .py migration, which kgmigrate commits batch by "
        "batch")
