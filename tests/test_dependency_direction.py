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
ABOVE_COMPILE = ("kgmigrate.engine", "kgmigrate.ledger", "kgmigrate.graph", "kgmigrate.runtime",
                 "kgmigrate.service", "kgmigrate.cli", "kgmigrate.dev", "kgmigrate.api",
                 "kgmigrate.runs", "kgmigrate.backup", "kgmigrate.monitoring")
LAYERS = [
    ("kgmigrate/model", ("kgmigrate.engine", "kgmigrate.ledger", "kgmigrate.graph.falkordb",
                         "kgmigrate.graph.neo4j", "kgmigrate.runtime", "kgmigrate.service",
                         "kgmigrate.cli", "kgmigrate.dev", "kgmigrate.api", "kgmigrate.runs",
                         "kgmigrate.compile")),
    ("kgmigrate/ops", (*ABOVE_COMPILE, "kgmigrate.compile")),
    ("kgmigrate/compile", ABOVE_COMPILE),
    ("kgmigrate/ledger", ("kgmigrate.engine", "kgmigrate.service", "kgmigrate.cli",
                          "kgmigrate.dev", "kgmigrate.compile", "kgmigrate.runtime",
                          "kgmigrate.api", "kgmigrate.runs", "kgmigrate.monitoring")),
    ("kgmigrate/graph", ("kgmigrate.engine", "kgmigrate.ledger", "kgmigrate.service",
                         "kgmigrate.cli", "kgmigrate.dev", "kgmigrate.compile", "kgmigrate.api",
                         "kgmigrate.runs", "kgmigrate.monitoring", "kgmigrate.ops")),
    ("kgmigrate/cypher", ("kgmigrate.engine", "kgmigrate.ledger", "kgmigrate.runtime",
                          "kgmigrate.service", "kgmigrate.cli", "kgmigrate.dev",
                          "kgmigrate.compile", "kgmigrate.ops")),
    ("kgmigrate/engine", ("kgmigrate.service", "kgmigrate.cli", "kgmigrate.api",
                          "kgmigrate.runs", "kgmigrate.dev")),
]


@pytest.mark.parametrize(("folder", "forbidden"), LAYERS, ids=[f for f, _ in LAYERS])
def test_each_layer_imports_only_the_layers_below(folder: str, forbidden: tuple[str, ...]
                                                   ) -> None:
    files = sorted((ROOT / folder).rglob("*.py"))
    assert files
    found = {str(f.relative_to(ROOT)): sorted(m for m in imported_modules(f)
                                              if m.startswith(forbidden)) for f in files}
    assert {f: bad for f, bad in found.items() if bad} == {}


def test_the_cli_calls_only_the_facade() -> None:
    """Each CLI module parses, calls `kgmigrate.service` and prints; settings, errors and the
    model's record types are all else it may name (neo4j-migrations' one-facade rule)."""
    allowed = ("kgmigrate.cli", "kgmigrate.service", "kgmigrate.model", "kgmigrate.errors",
               "kgmigrate.runtime.settings", "kgmigrate.__version__")
    found = {str(f.relative_to(ROOT)): sorted(
        m for m in imported_modules(f) if m.startswith("kgmigrate.")
        and not m.startswith(allowed)) for f in sorted((ROOT / "kgmigrate/cli").rglob("*.py"))}
    assert {f: bad for f, bad in found.items() if bad} == {}


@pytest.mark.parametrize("package", ["orchestrator", "workers"])
def test_task_modules_reach_only_the_engine_and_the_runtime(package: str) -> None:
    allowed = ("kgmigrate.engine", "kgmigrate.runtime", "kgmigrate.monitoring",
               "kgmigrate.errors")
    found = {str(f.relative_to(ROOT)): sorted(
        m for m in imported_modules(f) if m.startswith("kgmigrate") and m != "kgmigrate"
        and not m.startswith(allowed)) for f in sorted((ROOT / package).rglob("*.py"))}
    assert {f: bad for f, bad in found.items() if bad} == {}


def op_class_checks(path: Path, op_classes: set[str]) -> list[str]:
    """`isinstance(x, <op class>)` calls and `case <op class>(...)` patterns in the file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        named: list[ast.expr] = []
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id in ("isinstance", "issubclass") and len(node.args) == 2):
            named = [node.args[1]]
        elif isinstance(node, ast.MatchClass):
            named = [node.cls]
        names = {n.id if isinstance(n, ast.Name) else n.attr for expr in named
                 for n in ast.walk(expr) if isinstance(n, ast.Name | ast.Attribute)}
        found += [f"{path.name}:{node.lineno}: {name}" for name in sorted(names & op_classes)]
    return found


def test_only_compile_looks_at_an_ops_class() -> None:
    """The engine runs plans; which plan an op becomes is registered per op in compile/, so a
    new op never needs a branch elsewhere (Alembic's `implementation_for`)."""
    from kgmigrate import ops

    op_classes = {cls.__name__ for cls in ops.KINDS.values()} | {"LibraryOp", "OnEntities"}
    files = [f for package in FORBIDDEN for f in sorted((ROOT / package).rglob("*.py"))
             if not {"compile", "ops"} & set(f.relative_to(ROOT).parts)]
    assert [hit for f in files for hit in op_class_checks(f, op_classes)] == []


def test_the_op_class_check_sees_isinstance_and_match(tmp_path: Path) -> None:
    sample = tmp_path / "m.py"
    sample.write_text("if isinstance(op, ops.RunCypher | CreateIndex):\n    pass\n"
                      "match op:\n    case BatchedCypher(apply=a):\n        pass\n")
    assert op_class_checks(sample, {"RunCypher", "CreateIndex", "BatchedCypher"}) == [
        "m.py:1: CreateIndex", "m.py:1: RunCypher", "m.py:4: BatchedCypher"]


def environment_reads(path: Path) -> list[str]:
    """`os.environ`, `os.getenv` and friends (or importing them) in the file."""
    names = {"environ", "environb", "getenv", "putenv", "unsetenv"}
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if (isinstance(node, ast.Attribute) and node.attr in names
                and isinstance(node.value, ast.Name) and node.value.id == "os"):
            found.append(f"{path.name}:{node.lineno}: os.{node.attr}")
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            found += [f"{path.name}:{node.lineno}: from os import {a.name}"
                      for a in node.names if a.name in names]
    return found


def test_only_the_settings_module_touches_the_environment() -> None:
    files = [f for package in FORBIDDEN for f in sorted((ROOT / package).rglob("*.py"))
             if f.relative_to(ROOT).as_posix() != "kgmigrate/runtime/settings.py"]
    assert [hit for f in files for hit in environment_reads(f)] == []


def test_the_environment_check_sees_reads_and_writes(tmp_path: Path) -> None:
    sample = tmp_path / "m.py"
    sample.write_text("import os\nfrom os import getenv\nx = os.environ.get('A')\n"
                      "os.environ['B'] = '1'\n")
    assert sorted(environment_reads(sample)) == [
        "m.py:2: from os import getenv", "m.py:3: os.environ", "m.py:4: os.environ"]


def module_level_imports(root: Path) -> dict[str, set[str]]:
    """kgmigrate's modules and the kgmigrate modules each imports at module level (importing
    `a.b.c` imports the packages `a.b` and `a` too; a module's own packages aside: Python runs
    a package's `__init__` before its modules, so that edge is no cycle)."""
    names = {}
    for f in sorted((root / "kgmigrate").rglob("*.py")):
        rel = f.relative_to(root).with_suffix("")
        names[".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)] = f
    graph: dict[str, set[str]] = {}
    for name, f in names.items():
        found: set[str] = set()
        for node in ast.parse(f.read_text(), filename=str(f)).body:
            targets = ([node.module, *(f"{node.module}.{a.name}" for a in node.names)]
                       if isinstance(node, ast.ImportFrom) and node.module and node.level == 0
                       else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            for target in targets:
                parts = target.split(".")
                found |= {".".join(parts[:i]) for i in range(2, len(parts) + 1)}
        graph[name] = {d for d in found & names.keys()
                       if d != name and not name.startswith(d + ".")}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while (w := stack.pop()) != v:
                component.append(w)
            if component:
                found.append(sorted([v, *component]))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles() -> None:
    assert cycles(module_level_imports(ROOT)) == []


def test_the_cycle_check_sees_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
