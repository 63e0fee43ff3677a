"""Where the recorded provider responses live: ../shared/provider-fixtures beside the repository."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _find_fixtures() -> Path:
    """QTAP_PROVIDER_FIXTURES, else the nearest shared/provider-fixtures beside the repository or above it."""
    if os.environ.get("QTAP_PROVIDER_FIXTURES"):
        return Path(os.environ["QTAP_PROVIDER_FIXTURES"])
    for folder in REPO.parents:
        candidate = folder / "shared" / "provider-fixtures"
        if candidate.is_dir():
            return candidate
    return REPO.parent / "shared" / "provider-fixtures"


FIXTURES_DIR = _find_fixtures()


def fixture_bytes(name: str) -> bytes:
    path = FIXTURES_DIR / name
    if not path.is_file():
        raise FileNotFoundError(
            f"recorded fixture {name} not found in {FIXTURES_DIR}; set QTAP_PROVIDER_FIXTURES to the folder"
        )
    return path.read_bytes()
