"""The user's MCP servers as the plugin reads them, and the names their tools are offered under.

``ToolContext.settings["servers"]`` is a list of ``{name, url, headers, needs_approval}`` (the host's
settings page keeps it valid, header values decrypted); it is read defensively all the same, since a
malformed entry must cost that server only, never the user's other tools.

A tool is offered to the model as ``mcp_<server>_<tool>``: both parts cut down to ``[A-Za-z0-9_-]``
(what every provider accepts in a function name), the whole at most 64 characters, and unique, a
clash or a cut name taking a short suffix. The model only ever sees these names, so ``call`` maps one
back to its server and the tool's own name through the same computation (``ToolNames``).

May import: nothing of qtap's.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

MAX_NAME = 64
PREFIX = "mcp_"
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


@dataclass(frozen=True)
class Server:
    name: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)  # secrets: never printed
    needs_approval: bool = True


def sanitise(text: str) -> str:
    cleaned = _UNSAFE.sub("_", text).strip("_")
    return cleaned or "x"


def servers_from(settings: Mapping[str, Any]) -> list[Server]:
    """The usable servers of a settings mapping, in order (entries without a name or URL are skipped)."""
    found: list[Server] = []
    for entry in settings.get("servers") or ():
        server = server_from(entry)
        if server is not None:
            found.append(server)
    return found


def server_from(entry: Any) -> Server | None:
    if not isinstance(entry, Mapping):
        return None
    name, url = entry.get("name"), entry.get("url")
    if not isinstance(name, str) or not name.strip() or not isinstance(url, str) or not url.strip():
        return None
    raw_headers = entry.get("headers") or {}
    headers = (
        {str(k): str(v) for k, v in raw_headers.items() if v is not None} if isinstance(raw_headers, Mapping) else {}
    )
    approval = entry.get("needs_approval", True)
    return Server(name.strip(), url.strip(), headers, approval if isinstance(approval, bool) else True)


def _suffix(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:6]


def exposed_name(server: str, tool: str, taken: set[str]) -> str:
    """``mcp_<server>_<tool>``, sanitised, at most 64 characters, not in ``taken`` (which it joins)."""
    base = f"{PREFIX}{sanitise(server)}_{sanitise(tool)}"
    name = base
    if len(name) > MAX_NAME:
        name = f"{base[: MAX_NAME - 7]}_{_suffix(f'{server}/{tool}')}"
    number = 2
    while name in taken:
        tail = f"_{number}"
        name = f"{base[: MAX_NAME - len(tail)]}{tail}"
        number += 1
    taken.add(name)
    return name


@dataclass
class ToolNames:
    """Exposed name → (server, the tool's own name), built in the order of the user's servers."""

    routes: dict[str, tuple[Server, str]] = field(default_factory=dict)
    _taken: set[str] = field(default_factory=set)

    def add(self, server: Server, tools: Iterable[str]) -> list[tuple[str, str]]:
        """Name ``tools`` of ``server``; answers (exposed name, tool name) pairs in order."""
        named = []
        for tool in tools:
            exposed = exposed_name(server.name, tool, self._taken)
            self.routes[exposed] = (server, tool)
            named.append((exposed, tool))
        return named

    def find(self, exposed: str) -> tuple[Server, str] | None:
        return self.routes.get(exposed)
