"""Identifier safety: every name either is refused with a clear error, or round-trips exactly
on the real FalkorDB server without creating or deleting anything else."""

import re
import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kgmigrate.cypher import identifiers as ident
from kgmigrate.errors import IdentifierError
from kgmigrate.graph.base import GraphBackend

HOSTILE = ["a b", "//comment", "}", ")", "a)-[:X]->(b", "x}) DETACH DELETE n //", "MATCH",
           "ünïcødé", "漢字", "🧬", "with.dot", "semi;colon", "$param", "'quote'", '"dq"',
           "back\\slash", "  padded  ", "-", "0starts_with_digit", "e", "__kgmLower"]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_but_legal_names_are_backtick_quoted(name: str) -> None:
    assert ident.quote(name) == f"`{name}`"


@pytest.mark.parametrize(("name", "reason"), [
    ("", "empty"), ("a`b", "backtick"), ("`", "backtick"), ("x` DETACH DELETE n //", "backtick"),
    ("new\nline", "U+000A"), ("nul\x00", "U+0000"), ("tab\there", "U+0009"),
    ("\ud800", "U+D800"), ("x" * 256, "longer than 255"), ("__KGMRun", "reserved"),
])
def test_unsafe_names_are_refused_with_a_clear_error(name: str, reason: str) -> None:
    with pytest.raises(IdentifierError, match=re.escape(reason)):
        ident.quote(name, ident.Kind.LABEL)


def test_internal_callers_may_use_the_reserved_prefix() -> None:
    assert ident.label("__KGMRun", internal=True) == "`__KGMRun`"


@pytest.mark.parametrize("name", [None, 3, b"bytes"])
def test_non_strings_are_refused(name: object) -> None:
    with pytest.raises(IdentifierError, match="must be a string"):
        ident.prop(name)


def test_parameter_names_are_plain() -> None:
    assert ident.param_name("kgm_lo") == "kgm_lo"
    for bad in ["", "1x", "a-b", "a b", "a`", "x" * 65]:
        with pytest.raises(IdentifierError):
            ident.param_name(bad)


@given(st.text(min_size=0, max_size=300))
def test_quote_refuses_exactly_what_the_policy_refuses_and_wraps_the_rest(name: str) -> None:
    policy_refuses = (not name or "`" in name or len(name) > ident.MAX_LENGTH
                      or name.startswith(ident.RESERVED_PREFIX)
                      or any(unicodedata.category(c) in {"Cc", "Cs", "Co", "Cn"} for c in name))
    try:
        quoted = ident.quote(name)
    except IdentifierError:
        assert policy_refuses, f"{name!r} was refused without a reason in the policy"
    else:
        assert not policy_refuses, f"{name!r} was accepted although the policy refuses it"
        assert quoted == f"`{name}`"


NAMES = st.one_of(
    st.text(min_size=1, max_size=40),
    st.sampled_from(HOSTILE),
    st.text(alphabet=st.sampled_from(list("`(){}[]:;,.$'\"\\/ -*\n\x00e")), min_size=1,
            max_size=12),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(name=NAMES)
def test_names_round_trip_on_the_real_server(graph: GraphBackend, name: str) -> None:
    # Given any name: either it is refused before anything is sent ...
    try:
        label, rel, prop = ident.label(name), ident.rel_type(name), ident.prop(name)
    except IdentifierError:
        return
    # ... or, used as label, relationship type and property key at once,
    result = graph.write(
        f"CREATE (a:{label} {{{prop}: $v}})-[r:{rel} {{{prop}: $v}}]->(b:{label}) "
        f"RETURN labels(a) AS labels, type(r) AS type, keys(a) AS keys, a.{prop} AS value",
        {"v": name},
    )
    # it creates exactly what the statement says, and reads back exactly the same name
    try:
        record = result.single()
        assert record == {"labels": [name], "type": name, "keys": [name], "value": name}
        assert result.counters.nodes_created == 2
        assert result.counters.relationships_created == 1
        assert result.counters.nodes_deleted == 0
        totals = graph.read("MATCH (n) OPTIONAL MATCH (n)-[r]->() "
                               "RETURN count(DISTINCT n) AS n, count(r) AS r").single()
        assert totals == {"n": 2, "r": 1}
        found = graph.read(f"MATCH (a:{label})-[:{rel}]->(b) WHERE a.{prop} = $v "
                              "RETURN count(b) AS n", {"v": name}).value("n")
        assert found == 1
    finally:
        graph.write("MATCH (n) DETACH DELETE n")
