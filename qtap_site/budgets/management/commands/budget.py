"""``manage.py budget set|show|clear`` (SPEC §5b): budgets on cost (US dollars) and tokens (input +
output), per UTC day or month, for one user (``--user NAME``) or for everyone without their own
(``--default``). Thin: ``budgets.services`` validates and writes; a refusal is a one-line
``CommandError``.

May import: ``qtap_site.budgets.services``.
"""

from __future__ import annotations

import json
from argparse import ArgumentParser
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from qtap_site.budgets import services


def _who(parser: ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--user", metavar="NAME", help="the user's username")
    group.add_argument("--default", action="store_true", help="everyone without a budget of their own")


def _limit(value: Any) -> str:
    return "no limit" if value is None else str(value)


class Command(BaseCommand):
    help = "Set, show or clear cost and token budgets per user (or the default), per UTC day or month."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="set|show|clear")
        put = actions.add_parser("set", help="create or replace a budget")
        _who(put)
        put.add_argument("--period", required=True, choices=services.PERIODS)
        put.add_argument("--max-cost", metavar="USD", help="US dollars per period (e.g. 5 or 0.50)")
        put.add_argument("--max-tokens", metavar="N", type=int, help="input + output tokens per period")
        show = actions.add_parser("show", help="list every budget")
        show.add_argument("--json", action="store_true", help="print JSON")
        clear = actions.add_parser("clear", help="remove budgets")
        _who(clear)
        clear.add_argument("--period", choices=services.PERIODS, help="only this period (default: both)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            getattr(self, f"_{options['action']}")(options)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None

    def _user(self, options: dict[str, Any]) -> Any:
        return None if options.get("default") else services.user_named(options["user"])

    def _set(self, options: dict[str, Any]) -> None:
        user = self._user(options)
        budget = services.budget_set(
            user=user,
            period=options["period"],
            max_cost=services.parse_cost(options.get("max_cost")),
            max_tokens=options.get("max_tokens"),
        )
        who = user.get_username() if user else "default"
        self.stdout.write(
            self.style.SUCCESS(
                f"{who}: {budget.period} budget set: cost {_limit(budget.max_cost)} USD, "
                f"tokens {_limit(budget.max_tokens)} (UTC {budget.period}s)"
            )
        )

    def _show(self, options: dict[str, Any]) -> None:
        rows = services.budget_rows()
        if options.get("json"):
            self.stdout.write(json.dumps({"budgets": rows}, indent=2))
            return
        if not rows:
            self.stdout.write("No budgets: nobody's spending is limited.")
            return
        for row in rows:
            who = row["user"] or "(default)"
            self.stdout.write(
                f"{who:<20} {row['period']:<6} cost {_limit(row['max_cost'])} USD, tokens {_limit(row['max_tokens'])}"
            )
        self.stdout.write("Periods are UTC calendar days and months.")

    def _clear(self, options: dict[str, Any]) -> None:
        user = self._user(options)
        removed = services.budget_clear(user=user, period=options.get("period"))
        who = user.get_username() if user else "default"
        self.stdout.write(f"{who}: {removed} budget{'s' if removed != 1 else ''} removed")
