"""Splitting `.cypher` files into statements (no server)."""

import pytest

from kgmigrate.cypher.text import CypherTextError, split_statements, strip_comments


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
