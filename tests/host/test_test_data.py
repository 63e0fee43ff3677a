"""The suite reads its data only from inside the repository, so a fresh clone passes its tests.

The recorded provider responses live in ``tests/fakes/recordings``; no test, benchmark, Makefile rule
or CI step may point at a folder beside the checkout (such as a shared fixtures folder) or at an
absolute path of the machine it was written on.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from django.conf import settings

from tests.fakes import fixtures

REPO = Path(settings.BASE_DIR).resolve()
RECORDINGS = REPO / "tests" / "fakes" / "recordings"
SCANNED = ("tests", "bench", "Makefile", ".ci", "pyproject.toml", "plugins", "providers", "qtap_site")
# Spelled in pieces so this file does not match itself.
FORBIDDEN = re.compile(
    "|".join(
        (
            re.escape(".." + "/shared"),
            re.escape("shared" + "/provider-fixtures"),
            r"(?<![\w./~-])/" + r"work\b",
        )
    )
)


def tracked_text_files() -> list[Path]:
    """The tracked files under the scanned paths that decode as text (images and the like are skipped)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--", *SCANNED], cwd=REPO, capture_output=True, check=True).stdout
    found = []
    for name in filter(None, listed.decode().split("\0")):
        path = REPO / name
        try:
            path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError):
            continue
        found.append(path)
    return found


def test_recordings_are_read_from_inside_the_repository():
    folder = fixtures.FIXTURES_DIR.resolve()
    assert folder.is_relative_to(REPO), f"recordings are read from {folder}, outside {REPO}"
    assert folder == RECORDINGS


def test_no_environment_variable_moves_the_recordings_elsewhere(tmp_path):
    env = {**os.environ, "QTAP_PROVIDER_FIXTURES": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", "from tests.fakes.fixtures import FIXTURES_DIR; print(FIXTURES_DIR)"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(result.stdout.strip()).resolve() == RECORDINGS


def test_every_recording_has_its_request_and_a_provenance_row():
    recordings = sorted(
        p.name for p in RECORDINGS.iterdir() if not p.name.endswith(".request.txt") and not p.name.startswith(".")
    )
    recordings.remove("README.md")
    provenance = (RECORDINGS / "README.md").read_text(encoding="utf-8")
    assert len(recordings) >= 20
    for name in recordings:
        assert (RECORDINGS / f"{name}.request.txt").is_file(), f"{name} has no request beside it"
        assert f"\n| {name} |" in provenance, f"{name} has no row in the provenance table"
    assert fixtures.fixture_bytes("anthropic_stream_text.sse").startswith(b"event: message_start")


def test_the_scan_sees_the_files_it_guards():
    names = {p.relative_to(REPO).as_posix() for p in tracked_text_files()}
    assert {"Makefile", ".ci/run", "pyproject.toml", "tests/fakes/fixtures.py"} <= names
    assert FORBIDDEN.search("read " + "../" + "shared/x") and FORBIDDEN.search("cd " + "/" + "work/main")
    assert FORBIDDEN.search("https://example.com/work/x") is None


def test_no_tracked_file_reads_data_from_outside_the_repository():
    offenders = []
    for path in tracked_text_files():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if FORBIDDEN.search(line):
                offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not offenders, "paths outside the repository:\n" + "\n".join(offenders)
