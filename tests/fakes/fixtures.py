"""Where the recorded provider responses live: ``tests/fakes/recordings`` inside the repository.

Only there, so a fresh clone has everything its tests read; README.md in that folder says where each
recording came from.
"""

from __future__ import annotations

from pathlib import Path

FIXTURES_DIR = Path(__file__).resolve().parent / "recordings"


def fixture_bytes(name: str) -> bytes:
    """The recorded body ``name``, byte for byte as the service sent it."""
    path = FIXTURES_DIR / name
    if not path.is_file():
        raise FileNotFoundError(f"recorded fixture {name} not found in {FIXTURES_DIR}")
    return path.read_bytes()
