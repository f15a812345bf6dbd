"""Migration file names, versions, checksums and dependency ordering (no server)."""

import re
from pathlib import Path

import pytest

from kgmigrate.model.dag import DependencyError, resolve_dependencies, topological_order
from kgmigrate.model.versions import MigrationFile, MigrationFileError, Version, checksum, discover


def V(text: str) -> Version:  # reads like the file names
    return Version.parse(text)


def test_versions_compare_numerically_part_by_part() -> None:
    shuffled = [V("V1_10"), V("V0010"), V("V1"), V("V2"), V("V1_9"), V("V1_2")]
    assert sorted(shuffled) == [V("V1"), V("V1_2"), V("V1_9"), V("V1_10"), V("V2"), V("V0010")]
    assert V("V1") == V("V1_0") == V("1.0.0")
    assert str(V("V0001")) == "V0001"


def test_neo4j_migrations_file_names_are_understood() -> None:
    m = MigrationFile.from_path(Path("V0003__rename_gene_symbol.cypher"))
    assert (m.version, m.description, m.kind) == (V("V3"), "rename gene symbol", "cypher")
    assert MigrationFile.from_path(Path("V1_2_1__Add_index.py")).version == V("1.2.1")


@pytest.mark.parametrize("name", ["V1_add.py", "v__x.py", "0001__x.py", "V1__.py", "V1__x.sql",
                                  "Vx__y.cypher"])
def test_misnamed_files_are_refused_with_the_expected_pattern(name: str) -> None:
    with pytest.raises(MigrationFileError, match="V<version>__<description>"):
        MigrationFile.from_path(Path(name))


def test_checksum_ignores_line_endings_and_nothing_else() -> None:
    unix = "MATCH (n) SET n.x = 1;\nRETURN 1;\n"
    assert checksum(unix) == checksum(unix.replace("\n", "\r\n")) == checksum(unix.encode())
    assert checksum(unix) != checksum(unix.replace("1;", "2;", 1))
    assert checksum(unix) != checksum(unix + " ")
    assert len(checksum(unix)) == 64


def test_discover_orders_files_and_refuses_duplicates(tmp_path: Path) -> None:
    for name in ["V0010__ten.cypher", "V0002__two.py", "V0001__one.cypher", "README.md",
                 "__init__.py", "_helpers.py"]:
        (tmp_path / name).write_text("// x\n")
    assert [m.path.name for m in discover(tmp_path)] == [
        "V0001__one.cypher", "V0002__two.py", "V0010__ten.cypher"]
    (tmp_path / "V2__two_again.cypher").write_text("// y\n")
    with pytest.raises(MigrationFileError, match=re.escape(
            "duplicate version V0002: V0002__two.py and V2__two_again.cypher")):
        discover(tmp_path)


def test_a_misnamed_migration_file_in_the_directory_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "V1_forgot_double_underscore.cypher").write_text("")
    with pytest.raises(MigrationFileError, match=re.escape("V1_forgot_double_underscore.cypher")):
        discover(tmp_path)


def test_a_missing_directory_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(MigrationFileError, match="KGMIGRATE_MIGRATIONS_DIR"):
        discover(tmp_path / "nope")


def test_without_declared_dependencies_the_chain_is_linear() -> None:
    deps = resolve_dependencies({V("3"): None, V("1"): None, V("2"): None})
    assert deps == {V("1"): (), V("2"): (V("1"),), V("3"): (V("2"),)}
    assert topological_order(deps) == [V("1"), V("2"), V("3")]


def test_branches_and_a_merge_are_ordered_deterministically() -> None:
    # Given V1 <- V2 and V1 <- V3 (two branches), merged by V4, and V5 after the merge
    deps = resolve_dependencies({V("1"): None, V("2"): [V("1")], V("3"): [V("1")],
                                 V("4"): [V("3"), V("2")], V("5"): None})
    # then each comes after all it depends on, lowest version first among the ready ones
    assert topological_order(deps) == [V("1"), V("2"), V("3"), V("4"), V("5")]


def test_a_ready_lower_version_goes_before_a_higher_one_whatever_the_declaration_order() -> None:
    deps = {V("1"): (), V("7"): (V("1"),), V("3"): (V("1"),), V("9"): (V("3"),)}
    assert topological_order(deps) == [V("1"), V("3"), V("7"), V("9")]


def test_missing_dependencies_are_all_named() -> None:
    with pytest.raises(DependencyError, match="V2 depends on V0009; V3 depends on V8"):
        topological_order({V("1"): (), V("2"): (V("0009"),), V("3"): (V("8"),)})


def test_a_cycle_is_refused_and_named() -> None:
    deps = {V("1"): (), V("2"): (V("1"), V("4")), V("3"): (V("2"),), V("4"): (V("3"),)}
    with pytest.raises(DependencyError, match="cycle: V2 depends on V4 depends on V3 depends "
                                              "on V2"):
        topological_order(deps)


def test_self_dependency_is_refused() -> None:
    with pytest.raises(DependencyError, match="cannot depend on itself: V2"):
        topological_order({V("1"): (), V("2"): (V("2"),)})
