"""The deployments the load benchmark drives: the scripted provider server in its own process, a private
Redis and PostgreSQL database, and Daphne processes serving one site with users provisioned.

Loopback only. A module of helpers, not a benchmark (``python -m bench`` skips names with ``_``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.processes import DaphneProcess, free_port  # noqa: E402

# Users, their sessions, profiles and chats, made in the deployment's own environment.
_PROVISION = r"""
import json, sys
import django
django.setup()
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.sessions.backends.db import SessionStore
from django.core.management import call_command
from providers.models import ConnectionProfile
from qtap_site.chat.models import Chat

count, base_url = int(sys.argv[1]), sys.argv[2]
call_command("migrate", verbosity=0, interactive=False)
User = get_user_model()
users = []
for i in range(count):
    user = User(username=f"load-{i}")
    user.set_unusable_password()
    users.append(user)
users = User.objects.bulk_create(users)
profiles = ConnectionProfile.objects.bulk_create(
    ConnectionProfile(user=u, name="load", plugin="qtap-plugin-openai-compatible", model="load",
                      base_url=base_url, is_default=True)
    for u in users
)
chats = Chat.objects.bulk_create(Chat(user=u, profile=p, title="load") for u, p in zip(users, profiles))
out = []
for user, chat in zip(users, chats):
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    out.append({"chat": chat.pk, "cookie": f"sessionid={session.session_key}"})
print(json.dumps(out))
"""


@contextmanager
def provider_server(tokens: int, delay: float) -> Iterator[tuple[str, int]]:
    """The scripted OpenAI-dialect server in a process of its own: (base URL, pid)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.scripted_openai", "--tokens", str(tokens), "--delay", str(delay)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if not line.startswith("port="):
            raise RuntimeError(f"the provider server did not start: {line!r}")
        yield f"http://127.0.0.1:{line.split('=', 1)[1]}/v1", proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextmanager
def private_redis() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while (
            subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True).stdout.strip()
            != "PONG"
        ):
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextmanager
def private_postgres(admin_url: str) -> Iterator[str]:
    import psycopg

    name = f"qtap_load_{os.getpid()}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Deployment:
    """Daphne processes serving one site, with ``users`` provisioned (chat id and session cookie each)."""

    def __init__(self, mode: str, env: dict[str, str], processes: int) -> None:
        self.mode = mode
        self.env = env
        self.processes = [DaphneProcess(name=chr(ord("A") + i), env=env) for i in range(processes)]
        self.users: list[dict[str, Any]] = []

    def provision(self, count: int, base_url: str) -> None:
        out = subprocess.run(
            [sys.executable, "-c", _PROVISION, str(count), base_url],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )
        if out.returncode != 0:
            raise RuntimeError(f"provisioning failed:\n{out.stderr[-3000:]}")
        self.users = json.loads(out.stdout.strip().splitlines()[-1])

    def __enter__(self) -> Deployment:
        for process in self.processes:
            process.start(timeout=60)
        return self

    def __exit__(self, *exc: object) -> None:
        for process in self.processes:
            if exc[0] is not None:
                print(f"---- Daphne {process.name} log tail ----\n{process.logs()[-3000:]}", file=sys.stderr)
            process.cleanup()

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]


def base_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "REDIS_URL", "QTAP_"))}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "qtap_site.settings",
            "QTAP_DATA_DIR": str(data_dir),
            "QTAP_LOG_LEVEL": "WARNING",
            "QTAP_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env
