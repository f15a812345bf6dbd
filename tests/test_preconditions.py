"""neo4j-migrations' preconditions, placeholders and the reader's refusals (issue 19, items 2,
3, 4, 7 and 9): parsing, loading and deciding, without a server."""

import re
import textwrap
from pathlib import Path

import pytest

from kgmigrate.graph.types import ServerInfo
from kgmigrate.model.migration import Migration
from kgmigrate.model.placeholders import PlaceholderError, substitute
from kgmigrate.model.preconditions import Precondition, PreconditionError, parse
from kgmigrate.model.registry import Registry
from kgmigrate.model.versions import MigrationFileError, Version, checksum
from kgmigrate.ops import RunCypher

COMMUNITY_5 = ServerInfo("neo4j", "Neo4j Kernel 5.26.0 community", "bolt://x:1",
                         release="5.26.0", edition="community")
ENTERPRISE_2025 = ServerInfo("neo4j", "Neo4j Kernel 2025.10.1 enterprise", "bolt://x:1",
                             release="2025.10.1", edition="enterprise")
NEO4J_44 = ServerInfo("neo4j", "Neo4j Kernel 4.4.12 enterprise", "bolt://x:1",
                      release="4.4.12", edition="enterprise")
FALKORDB = ServerInfo("falkordb", "FalkorDB 4.22.1 on Redis 8.1.0", "falkordb://x:1/g",
                      release="4.22.1")


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def statements(migration: Migration) -> list[str]:
    return [s.statement for s in migration.steps if isinstance(s, RunCypher)]


@pytest.mark.parametrize(("comment", "kind", "subject", "detail"), [
    ("// assume that edition is enterprise", "assume", "edition", "enterprise"),
    ("//ASSERT that Edition is Community", "assert", "edition", "community"),
    ("// assume that version is 5.26", "assume", "version", ("is", ((5, 26),))),
    ("// assUMe that version is 4.4, 5.1 or 5.26", "assume", "version",
     ("is", ((4, 4), (5, 1), (5, 26)))),
    ("//assert that version is 3 or 4", "assert", "version", ("is", ((3,), (4,)))),
    ("// assume that version is ge 5.0", "assume", "version", ("ge", ((5, 0),))),
    ("// assert that version is LT 4.0.1.1", "assert", "version", ("lt", ((4, 0, 1, 1),))),
    ("// assume q' MATCH (b:Book) RETURN count(b) = 0", "assume", "query",
     "MATCH (b:Book) RETURN count(b) = 0"),
    ("//assert q'RETURN true", "assert", "query", "RETURN true"),
    ("// assume in target q'RETURN true", "assume", "query", "RETURN true"),
    ("// assume in schema q' RETURN true", "assume", "query", "RETURN true"),
])
def test_preconditions_parse_in_neo4j_migrations_grammar(
        comment: str, kind: str, subject: str, detail: object) -> None:
    found = parse(comment)
    assert found is not None
    assert (found.kind, found.subject) == (kind, subject)
    assert found.text == comment[2:].strip()
    shown = {"edition": found.edition, "version": (found.mode, found.versions),
             "query": found.query}[subject]
    assert shown == detail


@pytest.mark.parametrize("comment", [
    "// Hello, not a precondition", "// assume die Welt ist schlecht", "// assert nix",
    "// description: assume that edition is enterprise", "// assumed that x",
])
def test_other_comments_are_comments(comment: str) -> None:
    assert parse(comment) is None


@pytest.mark.parametrize(("comment", "message"), [
    ("// assume that edition is something", "the edition is enterprise or community"),
    ("// assume that edition is", "the edition is enterprise or community"),
    ("// assume that version is something", "versions are numbers like 5.26"),
    ("// assume that version is", "versions are numbers like 5.26"),
    ("// assume that version is ,", "versions are numbers like 5.26"),
    ("// assume that version is ge 5.0 or 6", "versions are numbers like 5.26"),
    ("// assume that neo4j is 4711", "is not a precondition; usage:"),
    ("// assume that q' RETURN false", "is not a precondition; usage:"),
    ("// assume in schema that version is 5", "is not a precondition; usage:"),
    ("// assume q'", "has no query"),
    ("// assert in target q'  ", "has no query"),
])
def test_a_mistyped_precondition_is_an_error_not_a_comment(comment: str, message: str) -> None:
    with pytest.raises(PreconditionError, match=re.escape(message)) as failure:
        parse(comment)
    assert f"`{comment[2:].strip()}`" in str(failure.value)


@pytest.mark.parametrize(("comment", "server", "holds"), [
    ("// assume that edition is community", COMMUNITY_5, True),
    ("// assume that edition is enterprise", COMMUNITY_5, False),
    ("// assume that edition is enterprise", ENTERPRISE_2025, True),
    ("// assume that version is 5", COMMUNITY_5, True),
    ("// assume that version is 5.26", COMMUNITY_5, True),
    ("// assume that version is 5.26.0", COMMUNITY_5, True),
    ("// assume that version is 5.2", COMMUNITY_5, False),  # parts, not text: not 5.26
    ("// assume that version is 4.4 or 5.26", COMMUNITY_5, True),
    ("// assume that version is 4.4", NEO4J_44, True),
    ("// assume that version is ge 5.0", COMMUNITY_5, True),
    ("// assume that version is ge 5.0", ENTERPRISE_2025, True),
    ("// assume that version is ge 5.0", NEO4J_44, False),
    ("// assume that version is ge 4.4.12", NEO4J_44, True),
    ("// assume that version is lt 5", NEO4J_44, True),
    ("// assume that version is lt 5.26", COMMUNITY_5, False),
    ("// assume that version is lt 5.26.1", COMMUNITY_5, True),
    ("// assume that edition is community", FALKORDB, False),
    ("// assume that version is 4.22.1", FALKORDB, False),
    ("// assume that version is ge 1", FALKORDB, False),
    ("// assume that version is lt 99", FALKORDB, False),
])
def test_edition_and_version_preconditions_hold_on_neo4j_only(
        comment: str, server: ServerInfo, holds: bool) -> None:
    found = parse(comment)
    assert found is not None
    assert found.holds_on(server) is holds


def test_a_precondition_on_falkordb_says_the_server_is_not_neo4j() -> None:
    found = parse("// assume that version is ge 5.0")
    assert found is not None
    assert found.not_holding(FALKORDB) == (
        "`assume that version is ge 5.0` does not hold: the server is FalkorDB 4.22.1 on "
        "Redis 8.1.0, not Neo4j (edition and version preconditions ask about Neo4j)")
    assert found.not_holding(NEO4J_44) == (
        "`assume that version is ge 5.0` does not hold on Neo4j Kernel 4.4.12 enterprise")


def test_precondition_lines_are_read_and_never_part_of_a_statement(tmp_path: Path) -> None:
    """Issue 19, item 2: precondition lines were comments, sent with the statement."""
    # Given a file with preconditions before and between its statements (CR-only endings)
    text = ("// description: Books\r// assume that edition is enterprise\r"
            "// ASSERT that version is ge 5.0\r"
            "CREATE CONSTRAINT b IF NOT EXISTS FOR (b:Book) REQUIRE b.isbn IS UNIQUE;\r"
            "// a comment that stays\r// assume q' MATCH (b:Book) RETURN count(b) = 0\r"
            "MATCH (b:Book) SET b.x = '// assume that edition is community';\r")
    (tmp_path / "V0001__books.cypher").write_bytes(text.encode())
    # When it loads
    loaded = Registry.load(tmp_path).get("V1")
    # Then its preconditions are those three, in order
    assert [(p.kind, p.subject, p.text) for p in loaded.definition.preconditions] == [
        ("assume", "edition", "assume that edition is enterprise"),
        ("assert", "version", "ASSERT that version is ge 5.0"),
        ("assume", "query", "assume q' MATCH (b:Book) RETURN count(b) = 0")]
    # and its statements keep every other comment and string, and no precondition
    assert statements(loaded.definition) == [
        "// description: Books\n\n\n"
        "CREATE CONSTRAINT b IF NOT EXISTS FOR (b:Book) REQUIRE b.isbn IS UNIQUE",
        "// a comment that stays\n\n"
        "MATCH (b:Book) SET b.x = '// assume that edition is community'"]
    assert loaded.description == "Books"
    assert loaded.checksum == checksum(text)


def test_a_cr_only_file_loads_every_statement_and_its_down_section(tmp_path: Path) -> None:
    """Issue 19, item 1, through the loader (V0001__mac.cypher of neo4j-migrations)."""
    (tmp_path / "V0001__mac.cypher").write_bytes(
        b"// c\rCREATE (:A);\r// note\rCREATE (:B);\rCREATE (:C);\r"
        b"// kgmigrate:down\rMATCH (n:A|B|C) DELETE n;\r")
    (tmp_path / "V0002__mac_ml.cypher").write_bytes(
        b"MATCH (n)\rRETURN count(n) AS n;\rMATCH (n)\rRETURN count(n) AS n;\r")
    registry = Registry.load(tmp_path)
    mac = registry.get("V1").definition
    assert [s.description for s in mac.operations] == ["CREATE (:A)", "CREATE (:B)",
                                                       "CREATE (:C)"]
    assert [s.description for s in mac.reverse_steps()] == ["MATCH (n:A|B|C) DELETE n"]
    assert statements(registry.get("V2").definition) == ["MATCH (n)\nRETURN count(n) AS n"] * 2


@pytest.mark.parametrize(("text", "message"), [
    ("// assume that edition is enterprize\nRETURN 1;",
     "V0001__x.cypher: precondition `assume that edition is enterprize`: the edition is "
     "enterprise or community"),
    ("RETURN 1;\n// kgmigrate:down\n// assume that edition is enterprise\nRETURN 2;",
     "V0001__x.cypher: precondition `assume that edition is enterprise` is after "
     "`// kgmigrate:down`; preconditions decide whether the migration runs: put them before "
     "it"),
    ("// assume that edition is enterprise\n", "V0001__x.cypher: no Cypher statements"),
])
def test_a_wrong_precondition_stops_every_command_naming_the_file(
        tmp_path: Path, text: str, message: str) -> None:
    write(tmp_path, "V0001__x.cypher", text)
    with pytest.raises(MigrationFileError) as failure:
        Registry.load(tmp_path)
    assert str(failure.value) == message


def test_placeholders_are_filled_in_after_the_split_and_the_checksum_is_the_files(
        tmp_path: Path) -> None:
    """Issue 19, items 3 and 7: `${nm:testLabel}` was written into the graph as a literal
    label. neo4j-migrations fills placeholders in per statement, after the split, and keeps
    the checksum of the file as written."""
    text = ("// assume q' MATCH (n:`${nm:label}`) RETURN count(n) = 0\n"
            "CREATE (:`${nm:label}` {env: '${nm:env}'});\n"
            "MATCH (n:`${nm:label}`) SET n.note = '${nm:note}';\n"
            "// kgmigrate:down\nMATCH (n:`${nm:label}`) DELETE n;\n")
    write(tmp_path, "V0001__placed.cypher", text)
    values = {"label": "Person", "env": "prod", "note": "a; b // c"}
    loaded = Registry.load(tmp_path, values).get("V1")
    assert statements(loaded.definition) == ["CREATE (:`Person` {env: 'prod'})",
                                             "MATCH (n:`Person`) SET n.note = 'a; b // c'"]
    assert [s.description for s in loaded.definition.reverse_steps()] == [
        "MATCH (n:`Person`) DELETE n"]
    assert loaded.definition.preconditions[0].query == (
        "MATCH (n:`Person`) RETURN count(n) = 0")
    other = Registry.load(tmp_path, {**values, "env": "test"}).get("V1")
    assert loaded.checksum == other.checksum == checksum(text)


@pytest.mark.parametrize(("text", "message"), [
    ("CREATE (:`${nm:testLabel}`);",
     "V0001__x.cypher: placeholder ${nm:testLabel} has no value: set it in "
     "KGMIGRATE_PLACEHOLDERS (a JSON object) or as NM_PLACEHOLDERS_testLabel"),
    ("CREATE (:`${nm:a}`);\nCREATE (:`${nm:b}` {x: '${nm:a}'});",
     "V0001__x.cypher: placeholders ${nm:a}, ${nm:b} have no value"),
    ("CREATE (:`${nm:my label}`);",
     "V0001__x.cypher: '${nm:my label}' is not a placeholder: write ${nm:name}"),
    ("CREATE (:`${nm:open`);", "V0001__x.cypher: '${nm:open`);' is not a placeholder"),
    ("// assert q' MATCH (n:`${nm:gone}`) RETURN true\nRETURN 1;",
     "V0001__x.cypher: placeholder ${nm:gone} has no value"),
])
def test_a_placeholder_without_a_value_is_an_error_naming_file_and_placeholder(
        tmp_path: Path, text: str, message: str) -> None:
    write(tmp_path, "V0001__x.cypher", text)
    with pytest.raises(MigrationFileError) as failure:
        Registry.load(tmp_path, {"known": "x"})
    assert str(failure.value).startswith(message)
    assert "\n" not in str(failure.value)


def test_substitution_leaves_other_dollar_braces_alone() -> None:
    assert substitute("RETURN $x, '${other}', '${nm:a}'", {"a": "1"}) == (
        "RETURN $x, '${other}', '1'")
    with pytest.raises(PlaceholderError):
        substitute("RETURN '${nm:}'", {})


def test_migrations_in_subfolders_are_refused_by_name(tmp_path: Path) -> None:
    """Issue 19, item 3: `moreStuff/V007__...` was skipped without a word."""
    write(tmp_path, "V0001__a.cypher", "RETURN 1;")
    write(tmp_path, "__pycache__/V0001__a.cpython-312.pyc", "")
    write(tmp_path, ".git/V0009__hidden.cypher", "RETURN 1;")
    write(tmp_path, "helpers/util.py", "X = 1\n")
    assert [str(v) for v in Registry.load(tmp_path).order] == ["V0001"]
    write(tmp_path, "moreStuff/V007__BondTheNameIsBond.cypher", "RETURN 7;")
    write(tmp_path, "moreStuff/deeper/V008__x.py", "X = 1\n")
    with pytest.raises(MigrationFileError) as failure:
        Registry.load(tmp_path)
    assert str(failure.value) == (
        f"moreStuff/V007__BondTheNameIsBond.cypher and 1 more: migrations in subfolders of "
        f"{tmp_path} are not supported (kgmigrate reads that directory only, not its "
        "subfolders); move them into it, one file per version")


def test_catalog_migrations_are_refused_by_name(tmp_path: Path) -> None:
    """Issue 19, item 3: `V...__*.xml` catalog migrations were skipped without a word."""
    write(tmp_path, "V0001__a.cypher", "RETURN 1;")
    write(tmp_path, "notes.xml", "<notes/>")
    assert len(Registry.load(tmp_path)) == 1
    write(tmp_path, "V0002__Create_constraints.xml", "<migration/>")
    with pytest.raises(MigrationFileError) as failure:
        Registry.load(tmp_path)
    assert str(failure.value) == (
        "V0002__Create_constraints.xml: catalog-based (.xml) migrations of neo4j-migrations "
        "are not supported; write it as a .cypher migration (or a .py one with "
        "ops.create_index / ops.drop_index for its indexes and constraints)")


def test_java_migrations_are_refused_by_name_and_a_byte_order_mark_is_ignored(
        tmp_path: Path) -> None:
    (tmp_path / "V0001__bom.cypher").write_bytes("\ufeffCREATE (:A);\n".encode())
    assert statements(Registry.load(tmp_path).get("V1").definition) == ["CREATE (:A)"]
    write(tmp_path, "V0002__Java.java", "class V0002__Java {}")
    with pytest.raises(MigrationFileError, match=re.escape(
            "V0002__Java.java: Java-based migrations of neo4j-migrations are not supported; "
            "write it as a .py migration")):
        Registry.load(tmp_path)


def test_out_of_order_follows_the_dependencies(tmp_path: Path) -> None:
    """Issue 19, item 9: what "lower than the highest applied" means in a DAG."""
    v = Version.parse
    # Given a linear chain (no depends_on): V1, V3 applied, V2 added later
    for name in ("V0001__a", "V0002__late", "V0003__c"):
        write(tmp_path / "linear", f"{name}.cypher", "RETURN 1;")
    linear = Registry.load(tmp_path / "linear")
    # Then V2 is out of order: V3, applied, comes after it
    assert linear.out_of_order([v("1"), v("3")], [v("2")]) == {v("2"): v("3")}
    assert linear.out_of_order([v("1"), v("2")], [v("3")]) == {}
    # Given branches V2 and V3 from V1 (depends_on), and `upgrade V3` applied V1 and V3
    write(tmp_path / "dag", "V0001__root.cypher", "RETURN 1;")
    write(tmp_path / "dag", "V0002__left.cypher", "// depends_on: V0001\nRETURN 2;")
    write(tmp_path / "dag", "V0003__right.cypher", "// depends_on: V0001\nRETURN 3;")
    write(tmp_path / "dag", "V0004__merge.cypher", "// depends_on: V0002, V0003\nRETURN 4;")
    dag = Registry.load(tmp_path / "dag")
    # Then V2 is a branch not taken yet, not out of order; after V4 it would be
    assert dag.out_of_order([v("1"), v("3")], [v("2"), v("4")]) == {}
    assert dag.out_of_order([v("1"), v("3"), v("4")], [v("2")]) == {v("2"): v("4")}


def test_preconditions_are_kgmigrate_preconditions() -> None:
    found = parse("// assume that edition is enterprise")
    assert isinstance(found, Precondition)
    Migration(steps=[RunCypher("RETURN 1")], preconditions=[found])
    with pytest.raises(Exception, match="preconditions must be kgmigrate preconditions"):
        Migration(steps=[RunCypher("RETURN 1")],
                  preconditions=["// assume that edition is enterprise"])  # type: ignore[list-item]
