"""Every `from kgmigrate... import ...` in the README's and docs' Python examples resolves: a
module that moves must take its examples with it."""

import ast
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"```python\n(.*?)```", re.S)


def example_imports(page: Path) -> list[tuple[str, str]]:
    """(module, name) of each kgmigrate import line in the page's Python blocks."""
    found = []
    for block in BLOCK.findall(page.read_text()):
        for line in block.splitlines():
            if not line.startswith("from kgmigrate"):
                continue
            node = ast.parse(line).body[0]
            assert isinstance(node, ast.ImportFrom) and node.module
            found += [(node.module, alias.name) for alias in node.names]
    return found


def resolves(module: str, name: str) -> bool:
    imported = importlib.import_module(module)
    if hasattr(imported, name):
        return True
    try:
        importlib.import_module(f"{module}.{name}")
    except ImportError:
        return False
    return True


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_the_examples_import_what_exists(page: Path) -> None:
    broken = [f"from {m} import {n}" for m, n in example_imports(page) if not resolves(m, n)]
    assert broken == []


def test_the_check_sees_a_moved_module(tmp_path: Path) -> None:
    page = tmp_path / "p.md"
    page.write_text("```python\nfrom kgmigrate import no_such_module\n```\n")
    [(module, name)] = example_imports(page)
    assert not resolves(module, name)
