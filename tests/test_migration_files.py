"""Loading migration files and ordering them (no server)."""

import re
import textwrap
from pathlib import Path

import pytest

from kgmigrate.compile import StatementPlan, compile_op
from kgmigrate.errors import KgmError
from kgmigrate.model.dag import DependencyError
from kgmigrate.model.migration import Migration
from kgmigrate.model.registry import Registry
from kgmigrate.model.versions import MigrationFileError, Version
from kgmigrate.ops import BatchedCypher, IrreversibleOperationError, RunCypher, batched, cypher


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


PY = """
from kgmigrate import Migration, ops

migration = Migration(
    author="ana",
    depends_on={deps},
    batch_size=500,
    steps=[ops.batched("Compound", "SET e.reviewed = $flag", flag=False,
                       down="REMOVE e.reviewed")],
)
"""


def test_a_python_migration_declares_ops_and_settings(tmp_path: Path) -> None:
    write(tmp_path, "V0001__review_flag.py", PY.format(deps=None))
    registry = Registry.load(tmp_path)
    meta = registry.metadata(Version.parse("1"))
    assert (meta.version, meta.description, meta.created_by, meta.batch_size) == (
        "V0001", "review flag", "ana", 500)
    step = meta.steps[0]
    assert (step.operation, step.batched, step.scope and step.scope.name) == (
        "batched_cypher", True, "Compound")
    assert step.spec["params"] == {"flag": False}
    assert registry.migrations[Version.parse("1")].definition.reversible


def test_a_cypher_migration_has_headers_statements_and_a_down_section(tmp_path: Path) -> None:
    write(tmp_path, "V0001__base.cypher", "CREATE (:Seed);\n")
    write(tmp_path, "V0002__gene_index.cypher", """
        // description: Index genes by symbol
        // author: bo
        // depends_on: V0001
        // timeout: 120
        CREATE INDEX FOR (g:Gene) ON (g.symbol);
        MATCH (g:Gene) SET g.indexed = true;
        // kgmigrate:down
        MATCH (g:Gene) REMOVE g.indexed;
        DROP INDEX FOR (g:Gene) ON (g.symbol);
    """)
    loaded = Registry.load(tmp_path).get("V2")
    assert loaded.description == "Index genes by symbol"
    assert (loaded.definition.author, loaded.definition.timeout) == ("bo", 120)
    assert loaded.depends_on == (Version.parse("1"),)
    statements = [s.statement for s in loaded.definition.steps if isinstance(s, RunCypher)]
    assert len(statements) == len(loaded.definition.steps) == 2
    assert statements[0].endswith("// timeout: 120\nCREATE INDEX FOR (g:Gene) ON (g.symbol)")
    assert statements[0].startswith("// description: Index genes by symbol")
    assert loaded.definition.steps[1].description == "MATCH (g:Gene) SET g.indexed = true"
    down = loaded.definition.reverse_steps()
    assert [d.description for d in down] == ["MATCH (g:Gene) REMOVE g.indexed",
                                             "DROP INDEX FOR (g:Gene) ON (g.symbol)"]


def test_a_cypher_migration_without_down_is_irreversible(tmp_path: Path) -> None:
    write(tmp_path, "V0001__x.cypher", "MATCH (n) SET n.x = 1;")
    definition = Registry.load(tmp_path).get("V1").definition
    assert not definition.reversible
    with pytest.raises(IrreversibleOperationError, match="no down statement"):
        definition.reverse_steps()


@pytest.mark.parametrize(("name", "text", "message"), [
    ("V0001__boom.py", "x = 1 / 0\n", "V0001__boom.py:1: ZeroDivisionError"),
    ("V0001__syntax.py", "def (:\n", "V0001__syntax.py:1: SyntaxError"),
    ("V0001__nothing.py", "x = 1\n", "must assign `migration = Migration(...)`"),
    ("V0001__empty.py", "from kgmigrate import Migration\nmigration = Migration(steps=[])\n",
     "V0001__empty.py:2: a migration needs at least one step"),
    ("V0001__bad_batch.py", "from kgmigrate import Migration, ops\n"
     "migration = Migration(steps=[ops.cypher('RETURN 1')], batch_size=0)\n",
     "batch_size must be a positive integer"),
    ("V0001__bad_label.py", "from kgmigrate import Migration, ops\n"
     "migration = Migration(steps=[ops.batched('A`B', 'SET e.x = 1')])\n",
     "contains a backtick"),
    ("V0001__deps.py", "from kgmigrate import Migration, ops\n"
     "migration = Migration(steps=[ops.cypher('RETURN 1')], depends_on='V0')\n",
     "depends_on must be a list"),
    ("V0001__open.cypher", "RETURN 'unterminated;\n", "V0001__open.cypher: unterminated"),
    ("V0001__blank.cypher", "// only a comment\n", "no Cypher statements"),
    ("V0001__hdr.cypher", "// timeout: soon\nRETURN 1;\n", "header timeout: not a whole number"),
])
def test_broken_files_give_one_line_naming_the_file(tmp_path: Path, name: str, text: str,
                                                    message: str) -> None:
    write(tmp_path, name, text)
    with pytest.raises(MigrationFileError, match=re.escape(message)) as failure:
        Registry.load(tmp_path)
    assert "\n" not in str(failure.value)


def test_files_form_a_dag_with_a_merge(tmp_path: Path) -> None:
    # Given V1, two branches V2 and V3 from it, and V4 merging both
    write(tmp_path, "V0001__root.cypher", "RETURN 1;")
    write(tmp_path, "V0002__left.cypher", "// depends_on: V0001\nRETURN 2;")
    write(tmp_path, "V0003__right.cypher", "// depends_on: V0001\nRETURN 3;")
    write(tmp_path, "V0004__merge.py", PY.format(deps='["V0003", "V0002"]'))
    write(tmp_path, "V0005__after.cypher", "RETURN 5;")
    registry = Registry.load(tmp_path)
    assert [str(v) for v in registry.order] == ["V0001", "V0002", "V0003", "V0004", "V0005"]
    assert registry.dependencies[Version.parse("5")] == (Version.parse("4"),)
    # then upgrading to V3 needs only V1 and V3, and what is applied is skipped
    assert [str(v) for v in registry.pending([], "V3")] == ["V0001", "V0003"]
    assert [str(v) for v in registry.pending([Version.parse("1"), Version.parse("3")])] == [
        "V0002", "V0004", "V0005"]


def test_a_dependency_cycle_in_files_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "V0001__a.cypher", "// depends_on: V0002\nRETURN 1;")
    write(tmp_path, "V0002__b.cypher", "// depends_on: V0001\nRETURN 2;")
    with pytest.raises(DependencyError, match="cycle: V0001 depends on V0002 depends on V0001"):
        Registry.load(tmp_path)


def test_a_missing_dependency_in_files_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "V0001__a.cypher", "RETURN 1;")
    write(tmp_path, "V0002__b.cypher", "// depends_on: V0001, V0042\nRETURN 2;")
    with pytest.raises(DependencyError, match="V0002 depends on V0042"):
        Registry.load(tmp_path)


def test_an_unknown_target_is_a_clear_error(tmp_path: Path) -> None:
    write(tmp_path, "V0001__a.cypher", "RETURN 1;")
    with pytest.raises(KgmError, match=r"no migration V0009 \(known: V0001\)"):
        Registry.load(tmp_path).pending([], "V0009")


def test_ops_reverse_and_describe_themselves() -> None:
    step = batched("Person", "SET e.age = 0", down="REMOVE e.age")
    assert isinstance(step.reverse(), BatchedCypher)
    assert step.reverse().apply == "REMOVE e.age"
    assert step.reverse().reverse() == step
    assert step.description == "on :Person: SET e.age = 0"
    rel = batched(rel_type="TREATS", apply="SET e.w = 1")
    assert rel.scope().entity == "relationship"
    with pytest.raises(ValueError, match="exactly one"):
        batched("A", "SET e.x = 1", rel_type="B")
    with pytest.raises(KgmError, match="reserved"):
        batched("A", "SET e.x = $kgm_lo", kgm_lo=1)
    assert cypher("RETURN 1", down="RETURN 2").reverse().spec()["statement"] == "RETURN 2"
    assert Migration(steps=[cypher("RETURN 1")]).reversible is False


# -- statements that commit as they go, and what is not Cypher (issue 19, items 10 and 11) ---

@pytest.mark.parametrize(("statement", "implicit"), [
    ("MATCH (n:A) CALL (n) { SET n.x = 1 } IN TRANSACTIONS OF 10 ROWS", True),
    ("MATCH (n:A) CALL { WITH n SET n.x = 1 }\nin transactions", True),
    ("MATCH (n:A) CALL (n) { SET n.x = 1 } IN 4 CONCURRENT TRANSACTIONS OF 5 ROWS", True),
    ("MATCH (n:A) CALL (n) { SET n.x = 1 } IN CONCURRENT TRANSACTIONS", True),
    ("MATCH (n:A) CALL (n) { SET n.x = 1 } /* in batches */ IN TRANSACTIONS "
     "ON ERROR CONTINUE REPORT STATUS AS s RETURN s", True),
    ("MATCH (n:A) CALL (n) { SET n.x = 1 } // in batches\nIN TRANSACTIONS", True),
    # the words in a string, a backtick name or a comment, or no IN TRANSACTIONS at all
    ("RETURN '} IN TRANSACTIONS' AS s", False),
    ('MATCH (n:A) SET n.note = "CALL { } IN TRANSACTIONS"', False),
    ("MATCH (n:`} IN TRANSACTIONS`) RETURN n", False),
    ("// CALL { } IN TRANSACTIONS\nMATCH (n:A) SET n.x = 1", False),
    ("/* CALL { } IN TRANSACTIONS */ MATCH (n:A) SET n.x = 1", False),
    ("CALL { MATCH (n:A) RETURN n } RETURN count(n)", False),
    ("WITH [1, 2] AS transactions RETURN 1 IN transactions", False),
])
def test_a_statement_that_commits_as_it_goes_is_read_from_its_code(
        tmp_path: Path, statement: str, implicit: bool) -> None:
    # Given a .cypher migration with the statement, and a down section with the same
    write(tmp_path, "V0001__touch.cypher",
          f"{statement};\nRETURN 1;\n// kgmigrate:down\n{statement};\n")
    # When it is read and its steps planned
    definition = Registry.load(tmp_path).get("V1").definition
    plans = [compile_op(op, "neo4j") for op in definition.operations]
    # Then the statement is a step like any other, sent as it is written, and its plan says
    # whether it must run in an implicit transaction (also as the file's down section)
    first, second = plans
    assert isinstance(first, StatementPlan)
    assert isinstance(second, StatementPlan)
    assert (first.statement, second.statement) == (statement, "RETURN 1")
    assert first.implicit == ({statement} if implicit else set())
    assert (first.undo, second.implicit) == ((statement,), set())


def test_an_implicit_statement_in_a_python_migration_is_planned_so_too(tmp_path: Path) -> None:
    statement = "MATCH (n:A) CALL (n) { SET n.x = 1 } IN TRANSACTIONS OF 10 ROWS"
    down = "MATCH (n:A) CALL (n) { REMOVE n.x } IN TRANSACTIONS OF 10 ROWS"
    plan = compile_op(cypher(statement, down=down), "neo4j")
    assert isinstance(plan, StatementPlan)
    assert (plan.implicit, plan.undo) == ({statement, down}, (down,))


USE_REFUSAL = ("is not Cypher: it switches the database in cypher-shell and neo4j-migrations, "
               "and kgmigrate migrates one database, the one KGMIGRATE_GRAPH_URL names; remove "
               "the line (another database's migrations go in a migrations directory of their "
               "own, run against it)")
PERIODIC_REFUSAL = ("`USING PERIODIC COMMIT` is not supported: Neo4j 5 removed it (and FalkorDB "
                    "never had it); write `CALL { ... } IN TRANSACTIONS OF n ROWS` instead "
                    "(Neo4j), or a batched step, `ops.batched` in a .py migration")


@pytest.mark.parametrize(("text", "line", "message"), [
    (":use system;\nCREATE USER ana SET PASSWORD 'x';\n", 1, f"`:use system` {USE_REFUSAL}"),
    ("// description: on another database\n\n  :USE reports\nCREATE (:A);\n", 3,
     f"`:USE reports` {USE_REFUSAL}"),
    ("CREATE (:A); :use neo4j;\nCREATE (:B);\n", 1, f"`:use neo4j` {USE_REFUSAL}"),
    ("CREATE (:A);\r:use `my-db`\rCREATE (:B);\r", 2, f"`:use `my-db`` {USE_REFUSAL}"),
    ("CREATE (:A);\n// kgmigrate:down\n:use neo4j;\nMATCH (a:A) DELETE a;\n", 3,
     f"`:use neo4j` {USE_REFUSAL}"),
    ("// import\nUSING PERIODIC COMMIT 500\nLOAD CSV FROM 'file:///x.csv' AS row\n"
     "CREATE (:A {v: row[0]});\n", 2, PERIODIC_REFUSAL),
    ("CREATE (:A);\nusing  periodic\ncommit LOAD CSV FROM 'file:///x.csv' AS row "
     "CREATE (:B);\n", 2, PERIODIC_REFUSAL),
])
def test_a_use_line_or_periodic_commit_is_refused_naming_file_and_line(
        tmp_path: Path, text: str, line: int, message: str) -> None:
    (tmp_path / "V0001__other_db.cypher").write_bytes(text.encode())
    with pytest.raises(MigrationFileError) as refused:
        Registry.load(tmp_path)
    assert str(refused.value) == f"V0001__other_db.cypher:{line}: {message}"


def test_use_and_periodic_commit_inside_strings_comments_and_names_are_not_refused(
        tmp_path: Path) -> None:
    write(tmp_path, "V0001__words.cypher", """
        // :use system
        /* USING PERIODIC COMMIT 10
        :use neo4j; */
        CREATE (:A {how: ':use system', why: "USING PERIODIC COMMIT"});
        MATCH (n
        :User) SET n.`:use x` = 1;
    """)
    definition = Registry.load(tmp_path).get("V1").definition
    assert [op.description for op in definition.operations] == [
        "CREATE (:A {how: ':use system', why: \"USING PERIODIC COMMIT\"})",
        "MATCH (n :User) SET n.`:use x` = 1"]


@pytest.mark.parametrize(("statement", "message"), [
    (":use system", f"a Cypher step: `:use system` {USE_REFUSAL}"),
    ("USING PERIODIC COMMIT LOAD CSV FROM 'file:///x' AS r CREATE (:A)",
     f"a Cypher step: {PERIODIC_REFUSAL}"),
])
def test_a_python_migration_cannot_send_them_either(tmp_path: Path, statement: str,
                                                     message: str) -> None:
    write(tmp_path, "V0001__admin.py", f"""
        from kgmigrate import Migration, ops

        migration = Migration(steps=[ops.cypher({statement!r})])
    """)
    with pytest.raises(MigrationFileError) as refused:
        Registry.load(tmp_path)
    assert str(refused.value) == f"V0001__admin.py:3: {message}"


def test_callbacks_are_read_by_phase_in_the_order_of_their_descriptions(tmp_path: Path) -> None:
    # Given a migration, callbacks of two phases (CR-only and CRLF files, a placeholder), and
    # files that only look like callbacks (the phase's case, a suffix)
    write(tmp_path, "V0001__a.cypher", "CREATE (:A);")
    (tmp_path / "afterMigrate__b_second.cypher").write_bytes(b"// c\rRETURN 2;\rRETURN 3;\r")
    (tmp_path / "afterMigrate__a_first.cypher").write_bytes(b"RETURN '${nm:env}';\r\n")
    write(tmp_path, "afterMigrate.cypher", "RETURN 0;")
    write(tmp_path, "beforeFirstUse.cypher", "RETURN 1;")
    registry = Registry.load(tmp_path, {"env": "prod"})
    # Then the callbacks are not migrations, and each phase's run in description order
    assert [str(v) for v in registry.order] == ["V0001"]
    after = registry.callbacks_of("afterMigrate")
    assert [(c.name, c.description) for c in after] == [
        ("afterMigrate.cypher", ""), ("afterMigrate__a_first.cypher", "a first"),
        ("afterMigrate__b_second.cypher", "b second")]
    assert [c.statements for c in after] == [
        ("RETURN 0",), ("RETURN 'prod'",), ("// c\nRETURN 2", "RETURN 3")]
    assert [c.name for c in registry.callbacks_of("beforeFirstUse")] == ["beforeFirstUse.cypher"]
    # by description, not by file name: "x y" sorts before "x.y", "__x_y" after "__x.y"
    write(tmp_path, "beforeInfo__x_y.cypher", "RETURN 1;")
    write(tmp_path, "beforeInfo__x.y.cypher", "RETURN 2;")
    assert [c.name for c in Registry.load(tmp_path, {"env": "prod"}).callbacks_of(
        "beforeInfo")] == ["beforeInfo__x_y.cypher", "beforeInfo__x.y.cypher"]
    for name in ("beforeInfo__x_y.cypher", "beforeInfo__x.y.cypher"):
        (tmp_path / name).unlink()
    assert registry.callbacks_of("beforeInfo") == ()
    # and a name that is not exactly a phase is a misnamed migration, refused by name
    for name in ("AfterMigrate.cypher", "afterMigrates.cypher", "afterMigrate_x.cypher"):
        write(tmp_path, name, "RETURN 1;")
        with pytest.raises(MigrationFileError, match=re.escape(
                f"{name}: migration files are named V<version>__<description>")):
            Registry.load(tmp_path, {"env": "prod"})
        (tmp_path / name).unlink()


def test_a_repeatable_migration_is_named_with_a_version_and_shares_the_version_space(
        tmp_path: Path) -> None:
    # Given a repeatable migration among versioned ones
    write(tmp_path, "V0001__a.cypher", "CREATE (:A);")
    write(tmp_path, "R0002__refresh.cypher", "MERGE (:B);")
    registry = Registry.load(tmp_path)
    # Then it takes its place by version, marked repeatable
    assert [str(v) for v in registry.order] == ["V0001", "V0002"]
    assert [registry.migrations[v].file.repeatable for v in registry.order] == [False, True]
    assert registry.metadata(Version.parse("V0002")).repeatable
    # and applied, it is repeated only when its file changed since
    checksum = registry.migrations[Version.parse("V0002")].checksum
    assert registry.to_repeat({Version.parse("V0001"): "x", Version.parse("V0002"): checksum}
                              ) == set()
    assert registry.to_repeat({Version.parse("V0001"): "x", Version.parse("V0002"): "old"}
                              ) == {Version.parse("V0002")}
    # A repeatable one without a version, or one sharing a version, is refused by name
    write(tmp_path, "R__views.cypher", "RETURN 1;")
    with pytest.raises(MigrationFileError, match=re.escape(
            "R__views.cypher: a repeatable migration needs a version, R<version>__<description>")):
        Registry.load(tmp_path)
    (tmp_path / "R__views.cypher").unlink()
    write(tmp_path, "V0002__b.cypher", "RETURN 1;")
    with pytest.raises(MigrationFileError, match="duplicate version V0002"):
        Registry.load(tmp_path)
