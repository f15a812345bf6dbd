"""Every statement the Neo4j dialect renders passes Neo4j's own Cypher linter
(`@neo4j-cypher/language-support`, lintCypherQuery): zero errors, zero warnings."""

import importlib
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.cypher_catalog import Rendered, neo4j_statements

LINT_DIR = Path(__file__).parent.parent / "tools" / "cypher-lint"
CYPHER_VERSIONS = ["", "CYPHER 5 ", "CYPHER 25 "]


def lint(statements: list[Rendered], processes: int = 2) -> dict[str, list[dict[str, Any]]]:
    """Neo4j's linter takes 0.1 to 2 s per statement (its semantic analysis, more on a loaded
    machine), so the statements are split over `processes` linters run side by side, and
    only the test's own timeout bounds them: a fixed bound per process failed two suites run
    beside each other."""
    if not (LINT_DIR / "node_modules" / "@neo4j-cypher" / "language-support").is_dir():
        pytest.fail("the Cypher linter is not installed: run `make install` (npm ci in "
                    f"{LINT_DIR})")
    node = shutil.which("node")
    assert node, "node is required for the Neo4j lint test"
    linters = []
    for part in range(processes):
        payload = json.dumps([{"name": s.name, "query": s.query, "parameters": s.parameters}
                              for s in statements[part::processes]])
        linter = subprocess.Popen([node, "lint.mjs"], cwd=LINT_DIR, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert linter.stdin is not None
        linter.stdin.write(payload)
        linter.stdin.close()
        linters.append(linter)
    found = {}
    for linter in linters:
        assert linter.stdout is not None and linter.stderr is not None
        out, err = linter.stdout.read(), linter.stderr.read()
        assert linter.wait() == 0, err
        found.update({r["name"]: r["diagnostics"] for r in json.loads(out)})
    assert len(found) == len(statements)
    return found


def test_the_linter_reports_what_it_should() -> None:
    # The check must be able to fail: a deprecated function and a syntax error are reported.
    found = lint([Rendered("deprecated", "MATCH (n) RETURN id(n)"),
                  Rendered("deprecated-25", "CYPHER 25 MATCH (n) RETURN id(n)"),
                  Rendered("broken", "MATCH (n RETURN n"),
                  Rendered("undeclared", "MATCH (n) WHERE n.x = $nope RETURN n"),
                  Rendered("fine", "MATCH (n) WHERE elementId(n) = $k RETURN n", {"k": "x"})])
    assert any("deprecated" in d["message"] for d in found["deprecated"])
    assert any("deprecated" in d["message"] for d in found["deprecated-25"])
    assert any(d["severity"] == "error" for d in found["broken"])
    assert any("$nope" in d["message"] for d in found["undeclared"])
    assert found["fine"] == []


@pytest.mark.timeout(1800)  # 180 s beside a second copy of the suite; 15 min next to two
def test_every_neo4j_statement_lints_clean() -> None:
    statements = neo4j_statements()
    assert len(statements) > 30
    variants = [Rendered(f"{version or 'default '}{s.name}", version + s.query, s.parameters)
                for s in statements for version in CYPHER_VERSIONS]
    findings = {name: diags for name, diags in lint(variants).items() if diags}
    assert findings == {}


CYPHER_START = re.compile(r"^\s*(MATCH|OPTIONAL MATCH|MERGE|CREATE|UNWIND|WITH|RETURN|CALL|SHOW|"
                          r"DROP|DETACH|FOREACH)\b")


def module_level_cypher() -> dict[str, str]:
    """Every module-level string of kgmigrate's packages that is a Cypher statement."""
    found: dict[str, str] = {}
    root = Path(__file__).parent.parent
    for package in ("kgmigrate", "orchestrator", "workers"):
        for path in sorted((root / package).rglob("*.py")):
            name = ".".join(path.relative_to(root).with_suffix("").parts)
            module = importlib.import_module(name)
            for attr, value in vars(module).items():
                if attr.isupper() and isinstance(value, str) and CYPHER_START.match(value):
                    found[f"{name}.{attr}"] = value
    return found


def test_the_catalog_holds_every_statement_constant_of_the_code() -> None:
    # Derived, not listed: a statement added to any module is linted or this test fails
    catalogued = {s.query for s in neo4j_statements()}
    constants = module_level_cypher()
    assert len(constants) > 30
    # (a fragment, such as a shared RETURN clause, is covered by the statements it ends)
    missing = {name for name, query in constants.items()
               if query not in catalogued and not any(query in full for full in catalogued)}
    assert missing == set()
