"""Create the first user of a fresh installation, and say how to sign in.

Does nothing (and prints nothing secret) once any user exists, so ``make run`` can call it every time.

May import: nothing of providers' (Django's auth only).
"""

from __future__ import annotations

import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import IntegrityError


class Command(BaseCommand):
    help = "Create a superuser with a random password when the database has no user yet."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default="admin", help="Name of the first user (default: admin).")
        parser.add_argument(
            "--url", default="http://127.0.0.1:8000/", help="Where the site is served, for the sign-in hint."
        )

    def handle(self, *args: Any, username: str, url: str, **options: Any) -> None:
        users = get_user_model()._default_manager
        if users.exists():
            self.stdout.write("A user already exists; no user created.")
            return
        if not username.strip():
            raise CommandError("--username cannot be empty")
        password = secrets.token_urlsafe(12)
        try:
            users.create_superuser(username=username, email="", password=password)
        except IntegrityError as exc:
            raise CommandError(f"could not create the first user: {exc}") from None
        self.stdout.write(self.style.SUCCESS("Created the first user."))
        self.stdout.write(f"Sign in at {url} with username {username!r} and password {password!r}")
        self.stdout.write("Change the password after signing in (top right menu, or the admin).")
