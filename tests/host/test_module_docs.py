"""Every module of providers/ opens with a docstring that says what it owns and, in a "May import:"
paragraph's first sentence, which of providers' modules it may import; it imports no other (at module level
or inside a function), so the layering is read in one place and cannot drift from the code."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from django.conf import settings

PROVIDERS = Path(settings.BASE_DIR) / "providers"


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PROVIDERS.rglob("*.py")):
        if "migrations" in path.parts or not path.read_text().strip():
            continue
        parts = list(path.relative_to(PROVIDERS.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = modules()


def imported(path: Path) -> set[str]:
    """The providers modules ``path`` imports, anywhere in it (``from providers import x`` names x)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in names if name in MODULES and name != "providers"}


def may_import(path: Path) -> set[str] | None:
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    paragraph = next((p for p in doc.split("\n\n") if p.startswith("May import")), None)
    if paragraph is None:
        return None
    allowed = re.split(r"[;.](?:\s|$)", paragraph, maxsplit=1)[0]  # what follows is commentary ("never …")
    return set(re.findall(r"``(providers(?:\.\w+)+)``", allowed))


def test_the_walk_finds_the_modules():
    assert {"providers.contract", "providers.base", "providers.openai_format.mapping"} <= set(MODULES)
    assert "providers.errors" in imported(MODULES["providers.contract"])


@pytest.mark.parametrize("module", sorted(MODULES))
def test_the_docstring_says_what_the_module_may_import(module):
    declared = may_import(MODULES[module])
    assert declared is not None, f"{module}'s docstring has no “May import:” paragraph"
    undeclared = imported(MODULES[module]) - declared - {module}
    assert not undeclared, f"{module} imports {sorted(undeclared)}, which its docstring does not allow"
