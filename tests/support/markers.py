"""Markers shared by the suites that need the scaled deployment (PostgreSQL + Redis)."""

from __future__ import annotations

import os

import pytest


def scaled_environment() -> tuple[bool, str]:
    database = os.environ.get("DATABASE_URL", "")
    redis = os.environ.get("REDIS_URL", "")
    if not database.startswith(("postgres://", "postgresql://", "pgsql://")):
        return False, "needs DATABASE_URL=postgres://… (the scaled run of .ci/run sets it)"
    if not redis:
        return False, "needs REDIS_URL=redis://… (the scaled run of .ci/run sets it)"
    return True, ""


_ready, _reason = scaled_environment()

# ``pytestmark = scaled_only`` in a module, or ``@pytest.mark.usefixtures`` style on one test.
scaled_only = [pytest.mark.scaled, pytest.mark.skipif(not _ready, reason=f"scaled deployment test: {_reason}")]


def scaled_test(function):  # type: ignore[no-untyped-def]
    """Decorator form of ``scaled_only`` for one test in a module that also runs unscaled."""
    for mark in scaled_only:
        function = mark(function)
    return function
