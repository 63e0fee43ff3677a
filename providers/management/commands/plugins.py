"""``manage.py plugins list|show|enable|disable``: inspect and switch plugins, providers and tools (SPEC §3.6).

``list`` and ``show`` need no database: before ``migrate`` (or with none reachable) each plugin shows its
manifest default and one line says so. ``enable`` / ``disable`` need it and say to migrate when it is not.

May import: ``providers.errors``, ``providers.plugin_info``, ``providers.plugin_state``,
``providers.registry``.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from providers.errors import UnknownProviderError
from providers.plugin_info import CAPABILITY_CHOICES, all_plugin_info, plugin_info
from providers.plugin_state import plugin_set_enabled, plugin_state_unavailable
from providers.registry import registry

_COLUMNS = (
    ("NAME", "name"),
    ("PROVIDER", "provider"),
    ("VERSION", "version"),
    ("STATUS", "status"),
    ("SOURCE", "source"),
)


class Command(BaseCommand):
    help = "List, show, enable or disable plugins (providers and tools)."
    # A diagnostic tool: it must still answer when another part of the site fails its checks.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="{list,show,enable,disable}")
        listing = actions.add_parser("list", help="every plugin, loaded or failed")
        listing.add_argument("--json", action="store_true", help="print one JSON array")
        listing.add_argument("--capability", choices=CAPABILITY_CHOICES, help="only plugins with this capability")
        show = actions.add_parser("show", help="one plugin in detail")
        show.add_argument("name")
        show.add_argument("--json", action="store_true", help="print one JSON object")
        for verb in ("enable", "disable"):
            actions.add_parser(verb, help=f"{verb} a loaded plugin").add_argument("name")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        # Listing needs no database: without one that can tell, each plugin shows its manifest default.
        unavailable = plugin_state_unavailable()
        stored = unavailable is None
        try:
            if action == "list":
                infos = all_plugin_info(capability=options["capability"], stored_states=stored)
                self._list(infos, as_json=options["json"])
            elif action == "show":
                self._show(plugin_info(options["name"], stored_states=stored), as_json=options["json"])
            elif unavailable is not None:
                canonical = registry.get(options["name"]).manifest.name  # an unknown name is named first
                raise CommandError(f"Cannot {action} {canonical}: {unavailable}; run `manage.py migrate`.")
            else:
                state = plugin_set_enabled(name=options["name"], enabled=action == "enable")
                self.stdout.write(self.style.SUCCESS(f"{state.name} {action}d."))
        except UnknownProviderError as exc:
            raise CommandError(self._unknown(exc)) from None
        except DatabaseError as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise CommandError(
                f"Cannot read plugin states from the database ({reason}); run `manage.py migrate`."
            ) from None
        if unavailable is not None:
            self._state_unknown(unavailable, as_json=options.get("json", False))

    def _state_unknown(self, reason: str, *, as_json: bool) -> None:
        """One line under a listing read without the database; beside JSON it goes to stderr, so stdout
        stays one JSON document."""
        notice = (
            f"Note: enable/disable state is unknown until `manage.py migrate` ({reason}); "
            "each plugin shows its manifest default."
        )
        (self.stderr if as_json else self.stdout).write(self.style.WARNING(notice))

    def _unknown(self, exc: UnknownProviderError) -> str:
        failure = registry.failure(exc.name)
        if failure is not None:
            return f"Plugin {exc.name} failed to load and cannot be changed: {failure.reason}"
        available = ", ".join(exc.available) or "none"
        return f"Unknown plugin {exc.name!r}. Available plugins: {available}"

    def _list(self, infos: list[dict[str, Any]], *, as_json: bool) -> None:
        if as_json:
            self.stdout.write(json.dumps(infos, indent=2))
            return
        header = [title for title, _ in _COLUMNS] + ["CAPABILITIES"]
        rows = [
            [str(info[key] or "-") for _, key in _COLUMNS]
            + [", ".join(cap for cap, on in info["capabilities"].items() if on) or "-"]
            for info in infos
        ]
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

        def line(cells: list[str]) -> str:
            return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()

        self.stdout.write(self.style.MIGRATE_HEADING(line(header)))
        for info, row in zip(infos, rows, strict=True):
            self.stdout.write(line(row))
            if info["error"]:  # the reason, on one line under its plugin
                self.stdout.write(self.style.ERROR(f"    error: {info['error']}"))

    def _show(self, info: dict[str, Any], *, as_json: bool) -> None:
        if as_json:
            self.stdout.write(json.dumps(info, indent=2))
            return
        for key, value in info.items():
            if isinstance(value, dict):
                value = ", ".join(f"{k}={v}" for k, v in value.items())
            elif isinstance(value, list):
                value = ", ".join(map(str, value)) or "-"
            self.stdout.write(f"{key:22} {'-' if value is None else value}")
