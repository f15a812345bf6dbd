"""neo4j-migrations' checksums of `.cypher` files, computed by kgmigrate (issue 19, item 12:
`import-chain` compares them with the ones its chain records). The expected values are the
ones neo4j-migrations' own tests assert for these contents (DefaultCypherResourceTests,
ChainBuilderTests, MigrationsIT)."""

import pytest

from kgmigrate.model.nm_checksum import checksum, checksums
from kgmigrate.model.versions import checksum as kgmigrate_checksum

THREE_COUNTS = "MATCH (n) RETURN count(n) AS n;{0}MATCH (n) RETURN count(n) AS n;{0}" \
               "MATCH (n) RETURN count(n) AS n;{0}"
TWO_LINE_COUNTS = "MATCH (n){0}RETURN count(n) AS n;{0}MATCH (n){0}RETURN count(n) AS n;{0}" \
                  "MATCH (n){0}RETURN count(n) AS n;{0}"
WITH_ASSUMPTION = ("// assert that edition is enterprise\n// I was there.\n"
                   "// assume that version is 4.3\nCREATE CONSTRAINT isbn_exists IF NOT EXISTS "
                   "ON (book:Library) ASSERT exists(book.isbn);\n"
                   "// assume that edition is enterprise\nMATCH (n) RETURN n;")
WITHOUT_ASSUMPTION = ("// I was there.\nCREATE CONSTRAINT isbn_exists IF NOT EXISTS "
                      "ON (book:Library) ASSERT exists(book.isbn);\nMATCH (n) RETURN n;")
COMMENT_AT_END = ('CREATE (s:Stuff)\nSET s.prop = "\nthis is a nice string with\n// a comment\n'
                  '  // in it!\n";\n// Arbitrary comment at end')


@pytest.mark.parametrize(("content", "expected"), [
    (THREE_COUNTS.format("\n"), "1902097523"),
    (THREE_COUNTS.format("\r\n"), "1902097523"),  # the statements are trimmed:
    (THREE_COUNTS.format("\r"), "1902097523"),  # the line ends do not count
    ("MATCH (n:BrokenData) DETACH DELETE n;", "1100083332"),
    ("RETURN 42/2 AS `Die halbe Wahrheit`;", "200310393"),
    (WITHOUT_ASSUMPTION, "1995107586"),
    (WITH_ASSUMPTION, "2044432884"),
    (COMMENT_AT_END, "1491717096"),
    (TWO_LINE_COUNTS.format("\n"), "1916418554"),
])
def test_the_checksum_is_the_one_neo4j_migrations_records(content: str, expected: str) -> None:
    # Given a file's content, When its checksum is taken as neo4j-migrations takes it
    found = checksum(content.encode())
    # Then it is the value neo4j-migrations records (its default settings), not kgmigrate's
    assert found == expected
    assert kgmigrate_checksum(content) != found


@pytest.mark.parametrize(("content", "expected", "variant"), [
    # recorded before the preconditions were added to the file: its "alternative checksum"
    (WITH_ASSUMPTION, "1995107586", "without its preconditions"),
    # recorded with `autocrlf`: a Windows checkout's statements with LF endings
    (TWO_LINE_COUNTS.format("\r\n"), "1916418554", "autocrlf"),
    # recorded with Flyway-compatible checksums
    (COMMENT_AT_END, "-626195011", "Flyway-compatible"),
])
def test_the_checksums_of_neo4j_migrations_other_settings_are_known_too(
        content: str, expected: str, variant: str) -> None:
    # When every checksum neo4j-migrations may have recorded for the file is taken
    found = {c.value: c.variant for c in checksums(content.encode())}
    # Then the one its other settings give is among them, and says which setting it is
    assert found[expected] == variant
    assert next(iter(found)) == checksum(content.encode())  # the default first


def test_a_byte_order_mark_and_placeholders_stay_as_written() -> None:
    # Given a file with a byte order mark and a placeholder
    plain = "CREATE (:`${nm:label}`);\n"
    marked = ("\ufeff" + plain).encode()
    # Then the mark counts in the statements' checksum (neo4j-migrations' reader keeps it) but
    # not in the Flyway-compatible one, and the placeholder is not filled in
    assert checksum(marked) != checksum(plain.encode())
    flyway = {c.variant: c.value for c in checksums(marked)}["Flyway-compatible"]
    assert flyway == {c.variant: c.value for c in checksums(plain.encode())}["Flyway-compatible"]
