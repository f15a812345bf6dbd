"""kgmigrate (core) imports neither orchestrator nor workers; those two never import each other."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
FORBIDDEN = {
    "kgmigrate": {"orchestrator", "workers"},
    "orchestrator": {"workers"},
    "workers": {"orchestrator"},
}


def imported_top_levels(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(
                node.func, "id", None)) in {"import_module", "__import__"} and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                names.add(arg.value.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_dependency_direction(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no Python files found under {package}/"
    offenders = {str(f.relative_to(ROOT)): sorted(imported_top_levels(f) & FORBIDDEN[package])
                 for f in files}
    assert {f: bad for f, bad in offenders.items() if bad} == {}


def test_the_checker_sees_imports(tmp_path: Path) -> None:
    sample = tmp_path / "m.py"
    sample.write_text("import workers.tasks\nfrom orchestrator import x\n"
                      "importlib.import_module('workers.y')\n")
    assert imported_top_levels(sample) >= {"workers", "orchestrator"}


def internal_labels_in_code(path: Path) -> set[str]:
    """`__KGM<name>` in the module's string constants (its rendered Cypher), docstrings aside."""
    tree = ast.parse(path.read_text(), filename=str(path))
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    return {match for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and id(node) not in docstrings
            for match in re.findall(r"__KGM[A-Za-z_]+", node.value)}


def test_only_the_ledger_names_its_own_labels() -> None:
    """Only kgmigrate/ledger/ writes (or even names) the `__KGM*` bookkeeping: every other
    module goes through it, so there is one writer of the ledger."""
    files = [f for package in FORBIDDEN for f in sorted((ROOT / package).rglob("*.py"))
             if "ledger" not in f.relative_to(ROOT).parts]
    found = {str(f.relative_to(ROOT)): sorted(internal_labels_in_code(f)) for f in files}
    assert {f: labels for f, labels in found.items() if labels} == {}


def test_the_label_check_sees_a_label_in_cypher(tmp_path: Path) -> None:
    sample = tmp_path / "m.py"
    sample.write_text('"""About `__KGMRun`."""\nQ = "MATCH (r:__KGMRun) RETURN r"\n')
    assert internal_labels_in_code(sample) == {"__KGMRun"}


def imported_modules(path: Path) -> set[str]:
    """Every absolute module name the file imports (`from a.b import c` gives `a.b` and
    `a.b.c`: c may be a module)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


# (files under this folder, the kgmigrate modules they must not import)
LAYERS = [
    ("kgmigrate/model", ("kgmigrate.engine", "kgmigrate.ledger", "kgmigrate.graph.falkordb",
                         "kgmigrate.graph.neo4j", "kgmigrate.runtime", "kgmigrate.service",
                         "kgmigrate.cli", "kgmigrate.dev", "kgmigrate.api", "kgmigrate.runs")),
    ("kgmigrate/ops", ("kgmigrate.engine", "kgmigrate.ledger", "kgmigrate.runtime",
                       "kgmigrate.service", "kgmigrate.cli", "kgmigrate.dev", "kgmigrate.api",
                       "kgmigrate.runs")),
    ("kgmigrate/cypher", ("kgmigrate.engine", "kgmigrate.ledger", "kgmigrate.runtime",
                          "kgmigrate.service", "kgmigrate.cli", "kgmigrate.dev")),
    ("kgmigrate/engine", ("kgmigrate.service", "kgmigrate.cli", "kgmigrate.api",
                          "kgmigrate.runs", "kgmigrate.dev")),
    ("kgmigrate/cli", ("kgmigrate.engine",)),
]


@pytest.mark.parametrize(("folder", "forbidden"), LAYERS, ids=[f for f, _ in LAYERS])
def test_each_layer_imports_only_the_layers_below(folder: str, forbidden: tuple[str, ...]
                                                   ) -> None:
    files = sorted((ROOT / folder).rglob("*.py"))
    assert files
    found = {str(f.relative_to(ROOT)): sorted(m for m in imported_modules(f)
                                              if m.startswith(forbidden)) for f in files}
    assert {f: bad for f, bad in found.items() if bad} == {}


@pytest.mark.parametrize("package", ["orchestrator", "workers"])
def test_task_modules_reach_only_the_engine_and_the_runtime(package: str) -> None:
    allowed = ("kgmigrate.engine", "kgmigrate.runtime", "kgmigrate.monitoring",
               "kgmigrate.errors")
    found = {str(f.relative_to(ROOT)): sorted(
        m for m in imported_modules(f) if m.startswith("kgmigrate") and m != "kgmigrate"
        and not m.startswith(allowed)) for f in sorted((ROOT / package).rglob("*.py"))}
    assert {f: bad for f, bad in found.items() if bad} == {}
