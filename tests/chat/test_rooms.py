"""The chat app's rooms: imports only go down. Every import among qtap_site's modules is read from the
source (module level and inside functions alike: a lazy import that dodges a cycle is still a cycle),
there is no cycle, and a chat module imports only modules of the rooms above its own, which its
docstring names in a "May import:" paragraph (the first sentence; chat modules by their short names).

``python -m tests.chat.test_rooms`` lists every import among qtap_site's modules and prints the cycles
and the imports that go up.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHAT = "qtap_site.chat"

# Top to bottom: a room imports only rooms above it (docs/DESIGN "Rooms").
ROOMS: list[tuple[str, ...]] = [
    ("models",),
    ("rendering", "attachments", "pricing", "tool_frames", "chat_frames", "branch_frames"),
    ("protocol",),
    ("services",),
    ("branches", "sending"),
    ("saves", "plans"),
    ("batching",),
    ("delivery",),
    ("tool_loop",),
    ("relaying", "early"),
    ("runner", "images"),
    ("consumers", "views", "api_views", "admin", "apps", "management"),
    ("routing", "urls", "api_urls"),
]


def modules() -> dict[str, Path]:
    """Dotted name → file, for every module of qtap_site (migrations aside)."""
    found = {}
    for path in sorted((ROOT / "qtap_site").rglob("*.py")):
        if "migrations" in path.parts:
            continue
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports(path: Path, module: str, known: set[str]) -> set[str]:
    """The qtap_site modules ``path`` imports, anywhere in it (``from a import b``: a, or a.b if a module)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # ``from a import b`` imports the module a.b when there is one, else a name of a.
            names.update(f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names)
    targets = set()
    for name in names:
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name and name != module:
            targets.add(name)
    return targets


def graph() -> dict[str, set[str]]:
    found = modules()
    return {module: imports(path, module, set(found)) for module, path in found.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def room(module: str) -> int | None:
    if not module.startswith(CHAT + "."):
        return None
    first = module.removeprefix(CHAT + ".").split(".")[0]
    return next((level for level, names in enumerate(ROOMS) if first in names), None)


def upward(edges: dict[str, set[str]]) -> list[str]:
    """Imports from a chat module to one of its own room or a room below it."""
    found = []
    for module, targets in sorted(edges.items()):
        here = room(module)
        for target in sorted(targets):
            there = room(target)
            if here is not None and there is not None and there >= here and not target.startswith(module):
                found.append(f"{module} → {target}")
    return found


def may_import(path: Path) -> set[str] | None:
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    paragraph = next((p for p in doc.split("\n\n") if p.startswith("May import")), None)
    if paragraph is None:
        return None
    allowed = re.split(r"[;.](?:\s|$)", paragraph, maxsplit=1)[0]  # what follows is commentary
    return {f"{CHAT}.{name}" for name in re.findall(r"``(\w+)``", allowed)}


def test_each_chat_module_says_what_it_may_import_and_imports_no_more() -> None:
    edges, found = graph(), modules()
    for module, path in found.items():
        if not module.startswith(CHAT + ".") or path.name == "__init__.py":
            continue
        declared = may_import(path)
        assert declared is not None, f"{module}'s docstring has no “May import:” paragraph"
        chat_imports = {t for t in edges[module] if t.startswith(CHAT + ".")}
        undeclared = {t.rpartition(".")[2] for t in chat_imports} - {d.rpartition(".")[2] for d in declared}
        assert not undeclared, f"{module} imports {sorted(undeclared)}, which its docstring does not allow"


def test_every_chat_module_has_a_room() -> None:
    homeless = [m for m in graph() if m.startswith(CHAT + ".") and room(m) is None]
    assert homeless == []


def test_no_import_cycle_in_qtap_site() -> None:
    assert cycles(graph()) == []


def test_chat_imports_only_go_down() -> None:
    assert upward(graph()) == []


if __name__ == "__main__":  # pragma: no cover - a report for people
    edges = graph()
    for module, targets in sorted(edges.items()):
        print(f"{module}: {', '.join(sorted(targets)) or '-'}")
    print("cycles:", "; ".join(" ↔ ".join(c) for c in cycles(edges)) or "none")
    print("imports that go up:", "; ".join(upward(edges)) or "none")
    sys.exit(1 if cycles(edges) or upward(edges) else 0)
