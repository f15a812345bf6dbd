"""Loading migration files and ordering them (no server)."""

import re
import textwrap
from pathlib import Path

import pytest

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
    with pytest.raises(KgmError, match=r"no migration V0009 \(latest: V0001\)"):
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
