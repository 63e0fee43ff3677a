"""Serve SmolLM2-135M-Instruct on loopback and give a user a profile for it (``make local-model``).

May import: ``providers.local_model``.
"""

from __future__ import annotations

import signal
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from providers import local_model


class Command(BaseCommand):
    help = (
        "Start a small real model (SmolLM2-135M-Instruct on llama-cpp-python's OpenAI-compatible server) "
        'on 127.0.0.1 and create or update the "Local SmolLM2" connection profile for a user.'
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=local_model.DEFAULT_PORT, help="Port to serve on (8080).")
        parser.add_argument("--n-ctx", type=int, default=local_model.DEFAULT_N_CTX, help="Context size in tokens.")
        parser.add_argument("--user", help="Username that gets the profile (default: the first superuser).")
        parser.add_argument(
            "--no-start", action="store_true", help="Do not start a server: use the one already on --port."
        )
        parser.add_argument("--timeout", type=float, default=120.0, help="Seconds to wait for the server.")

    def handle(self, *args: Any, port: int, n_ctx: int, user: str | None, no_start: bool, timeout: float, **_: Any):
        owner = self._user(user)
        url = local_model.base_url("127.0.0.1", port)
        process = None
        try:
            if not no_start:
                self.stdout.write(f"Starting SmolLM2 on {url} …")
                process = local_model.start_server(port=port, n_ctx=n_ctx)
            profile, created = self._profile(owner, url, process, timeout)
        except BaseException:
            if process is not None:
                local_model.stop_server(process)
            raise
        verb = "Created" if created else "Updated"
        self.stdout.write(self.style.SUCCESS(f'{verb} profile "{profile.name}" for {owner.get_username()} ({url}).'))
        if process is None:
            return
        self.stdout.write("The model is serving. Press Ctrl-C to stop it.")
        # A service manager stops us with SIGTERM: treat it like Ctrl-C so the server goes down too.
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            process.wait()
        except KeyboardInterrupt:
            self.stdout.write("Stopping the model server.")
        finally:
            local_model.stop_server(process)

    def _profile(self, owner: Any, url: str, process: Any, timeout: float) -> tuple[Any, bool]:
        try:
            models = local_model.wait_until_ready(url, process=process, timeout=timeout)
            model = local_model.MODEL_ALIAS if local_model.MODEL_ALIAS in models else (models or [""])[0]
            if not model:
                raise CommandError(f"the server at {url} lists no model")
            return local_model.ensure_profile(user=owner, url=url, model=model)
        except local_model.LocalModelError as exc:
            raise CommandError(str(exc)) from None
        except ValidationError as exc:
            raise CommandError(f"cannot save the profile: {'; '.join(exc.messages)}") from None

    def _user(self, username: str | None) -> Any:
        users = get_user_model()._default_manager
        if username:
            found = users.filter(**{get_user_model().USERNAME_FIELD: username}).first()
            if found is None:
                raise CommandError(f"no user named {username!r}")
            return found
        first = users.filter(is_superuser=True).order_by("pk").first()
        if first is None:
            raise CommandError("no superuser exists yet: run `manage.py ensure_first_user` or pass --user")
        return first


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt
