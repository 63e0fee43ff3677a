"""The code's shape: imports only go down (no cycle among the project's modules, counting imports made
inside functions), and no module grows past 400 lines (migrations and tests aside)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("providers", "qtap_site", "plugins")
MAX_LINES = 400


def project_modules() -> dict[str, Path]:
    """Dotted name → file, for every module of the project's packages (plugin folders keep their hyphen:
    the loader imports them by path, so a name is only needed to tell them apart)."""
    modules: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def imported_names(path: Path, module: str) -> set[str]:
    """Every module ``path`` imports, at module level or inside a function, relative imports resolved."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                prefix = ".".join([*base, node.module] if node.module else base)
            else:
                prefix = node.module or ""
            names.add(prefix)
            names.update(f"{prefix}.{alias.name}" for alias in node.names)
    return names


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        targets = set()
        for name in imported_names(path, module):
            # ``from a.b import c`` names a.b (and a.b.c when c is a module); a package import runs __init__.
            while name and name not in modules:
                name = name.rsplit(".", 1)[0] if "." in name else ""
            if name and name != module:
                targets.add(name)
        graph[module] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_finder_sees_a_cycle_through_a_function_level_import(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("import b\n")
    (tmp_path / "b.py").write_text("def f():\n    from a import x\n")
    graph = {
        "a": {n for n in imported_names(tmp_path / "a.py", "a") if n in ("a", "b")},
        "b": {n for n in imported_names(tmp_path / "b.py", "b") if n in ("a", "b")},
    }
    assert cycles(graph) == [["a", "b"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_covers_the_project() -> None:
    graph = import_graph()
    assert {"providers.contract", "qtap_site.chat.runner", "qtap_site.chat.consumers"} <= set(graph)
    assert "providers.contract" in graph["providers.registry"] or any(
        "providers.contract" in targets for targets in graph.values()
    )


def test_no_import_cycle() -> None:
    found = cycles(import_graph())
    assert found == [], "import cycles: " + "; ".join(" ↔ ".join(c) for c in found)


def test_the_contract_stands_alone() -> None:
    """What plugin authors read imports nothing of qtap's but the errors they raise (no manifest, no Django)."""
    graph = import_graph()
    assert {t for t in graph["providers.contract"] if t.startswith(PACKAGES)} <= {"providers.errors"}
    source = (REPO / "providers" / "contract.py").read_text()
    assert "django" not in {
        name.split(".")[0] for name in imported_names(REPO / "providers" / "contract.py", "providers.contract")
    }
    assert "import django" not in source


@pytest.mark.parametrize("package", [*PACKAGES, "bench"])
def test_no_module_over_400_lines(package: str) -> None:
    long = {
        str(path.relative_to(REPO)): lines
        for path in (REPO / package).rglob("*.py")
        if "migrations" not in path.parts and (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}, f"modules over {MAX_LINES} lines: {long}"
