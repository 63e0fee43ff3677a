"""Where the recorded provider responses live: ../shared/provider-fixtures beside the repository."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIXTURES_DIR = Path(os.environ.get("QTAP_PROVIDER_FIXTURES", REPO.parent / "shared" / "provider-fixtures"))


def fixture_bytes(name: str) -> bytes:
    path = FIXTURES_DIR / name
    if not path.is_file():
        raise FileNotFoundError(
            f"recorded fixture {name} not found in {FIXTURES_DIR}; set QTAP_PROVIDER_FIXTURES to the folder"
        )
    return path.read_bytes()
