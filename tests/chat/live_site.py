"""A real qtap site in a subprocess: its own data directory, migrated and provisioned, served by Daphne
on a free loopback port. Used by the end-to-end test and by bench/relay.py."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
DAPHNE = str(Path(PYTHON).with_name("daphne"))

_PROVISION = """
import json, sys
from django.contrib.auth import get_user_model
from django.test import Client
from providers.services import api_key_create, connection_profile_create
from qtap_site.chat.services import chat_create
from tests.support.data import chat_completions_for

args = json.loads(ARGS)
User = get_user_model()
user = User.objects.filter(username="live").first() or User.objects.create_user("live", password="live-site-password")
key = api_key_create(user=user, plugin=args["plugin"], label="live", secret=args["secret"])
profile = connection_profile_create(
    user=user, name="Live", plugin=args["plugin"], model=args["model"], api_key=key, base_url=args["base_url"],
    parameters=chat_completions_for(args["plugin"]),
)
chats = [chat_create(user=user, profile=profile).pk for _ in range(args["chats"])]
client = Client()
client.force_login(user)
print("PROVISIONED " + json.dumps({"cookie": client.cookies["sessionid"].value, "chat_ids": chats}))
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def site_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "REDIS_URL"))}
    env.update(
        {"QTAP_DATA_DIR": str(data_dir), "DJANGO_SETTINGS_MODULE": "qtap_site.settings", "PYTHONPATH": str(ROOT)}
    )
    env.update(extra)
    return env


def provision(env: dict[str, str], *, base_url: str, secret: str, chats: int = 1, model: str = "gpt-4o-mini",
              plugin: str = "qtap-plugin-openai") -> dict[str, Any]:  # fmt: skip
    """Migrate the site's database and create a user, a key, a profile and ``chats`` chats."""
    subprocess.run(
        [PYTHON, "manage.py", "migrate", "--no-input", "--skip-checks"], cwd=ROOT, env=env, check=True,
        capture_output=True, timeout=300,
    )  # fmt: skip
    args = json.dumps({"base_url": base_url, "secret": secret, "chats": chats, "model": model, "plugin": plugin})
    script = f"ARGS = {args!r}\n{_PROVISION}"
    done = subprocess.run(
        [PYTHON, "manage.py", "shell", "-c", script], cwd=ROOT, env=env, check=True, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    line = next(line for line in done.stdout.splitlines() if line.startswith("PROVISIONED "))
    return dict(json.loads(line.removeprefix("PROVISIONED ")))


class Daphne:
    """``daphne -b 127.0.0.1 -p <free port> qtap_site.asgi:application`` for the duration of a block."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.port = free_port()
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws_url(self, chat_id: int) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/chats/{chat_id}/"

    def __enter__(self) -> Daphne:
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [DAPHNE, "-b", "127.0.0.1", "-p", str(self.port), "qtap_site.asgi:application"],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"daphne exited: {self.log_path.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("daphne did not start listening") from None
                time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
