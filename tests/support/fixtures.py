"""pytest fixtures built on the helpers; a suite's conftest.py imports the ones it uses."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.support.data import ChatSetup, chat_setup
from tests.support.scripted_openai import Script, ScriptedOpenAI
from tests.support.wsclient import session_cookie


@pytest.fixture
def scripted_openai() -> Iterator[ScriptedOpenAI]:
    with ScriptedOpenAI(Script(tokens=5)) as fake:
        yield fake


@pytest.fixture
def chat_on_fake(transactional_db: None, user: object, scripted_openai: ScriptedOpenAI) -> ChatSetup:
    """alice's chat with an OpenAI profile (and key) pointing at the scripted server, committed."""
    return chat_setup(user, scripted_openai.base_url)


@pytest.fixture
def alice_cookie(transactional_db: None, user: object) -> str:
    return session_cookie(user)


@pytest.fixture
async def close_worker_connections() -> AsyncIterator[None]:
    """Close the database connection of asgiref's worker thread after an async test: with
    CONN_MAX_AGE it would stay open and keep PostgreSQL from dropping the test database."""
    yield
    from asgiref.sync import sync_to_async
    from django.db import connections

    await sync_to_async(connections.close_all)()
