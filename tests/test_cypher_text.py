"""Splitting `.cypher` files into statements (no server)."""

import pytest

from kgmigrate.cypher.text import (
    CypherTextError,
    normalize_line_endings,
    split_statements,
    strip_comments,
)


def test_statements_split_on_semicolons_outside_quotes_and_comments() -> None:
    text = """
    // header comment; not a statement
    MATCH (n:`We;ird`) SET n.s = 'a;b', n.t = "c\\";d";
    /* block; comment */
    CREATE (:X {v: 'it\\'s;'})   // trailing; comment
    ;
    ;;
    RETURN 1
    """
    assert split_statements(text) == [
        "// header comment; not a statement\n    MATCH (n:`We;ird`) SET n.s = 'a;b', "
        "n.t = \"c\\\";d\"",
        "/* block; comment */\n    CREATE (:X {v: 'it\\'s;'})   // trailing; comment",
        "RETURN 1",
    ]


def test_comment_only_text_has_no_statements() -> None:
    assert split_statements("// nothing\n/* here */\n;  ;") == []


@pytest.mark.parametrize("text", ["RETURN 'open", "RETURN `open", "/* open", 'RETURN "x\\"'])
def test_unterminated_quotes_and_comments_are_refused(text: str) -> None:
    with pytest.raises(CypherTextError, match="unterminated"):
        split_statements(text)


def test_strip_comments_keeps_quoted_comment_markers() -> None:
    assert strip_comments("RETURN '//x' /* c */ // d") == "RETURN '//x'"


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"], ids=["LF", "CRLF", "CR"])
def test_a_line_comment_ends_at_any_line_ending(newline: str) -> None:
    """Issue 19, item 1: a `//` comment ran to the next `\\n`, so in a file with old-Mac
    endings (`\\r` only) it swallowed every statement after it."""
    # Given the two files, with each line ending
    first = "// c\rCREATE (:A);\rCREATE (:B);\r".replace("\r", newline)
    second = "CREATE (:A);\r// note\rCREATE (:B);\rCREATE (:C);\r".replace("\r", newline)
    # When they are split, Then every statement is there, the comments with the next one
    assert [strip_comments(s) for s in split_statements(first)] == ["CREATE (:A)",
                                                                     "CREATE (:B)"]
    assert [strip_comments(s) for s in split_statements(second)] == [
        "CREATE (:A)", "CREATE (:B)", "CREATE (:C)"]
    assert split_statements(second)[1] == f"// note{newline}CREATE (:B)"


def test_line_endings_normalize_as_the_checksum_counts_them() -> None:
    assert normalize_line_endings("a\r\nb\rc\nd\r\r\n") == "a\nb\nc\nd\n\n"
