"""``manage.py plugins`` on a database that was never migrated, or that cannot be reached.

Listing what is installed needs no database: each plugin shows its load status with its manifest
default and one line says the enable/disable state is unknown until ``manage.py migrate``. Changing a
state does need the database, so ``enable`` / ``disable`` stop with a one-line reason, never a traceback.
Each test runs ``manage.py`` in a real process over an empty data folder.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from tests.host.conftest import BROKEN_DIR, BUNDLED_NAMES, make_plugins_dir
from tests.host.test_commands import assert_bundled_capabilities

UNKNOWN = "enable/disable state is unknown until `manage.py migrate`"


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def add_plugin_off_by_default(plugins: Path) -> None:
    """A local plugin whose manifest says ``enabledByDefault: false``."""
    folder = plugins / "qtap-plugin-off"
    shutil.copytree(BROKEN_DIR / "qtap-plugin-future", folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest.update(name="qtap-plugin-off", enabledByDefault=False, compatibility={"qtapVersion": ">=0.1"})
    manifest["providerConfig"]["providerName"] = "OFF"
    (folder / "manifest.json").write_text(json.dumps(manifest))


@pytest.fixture
def empty_site(tmp_path) -> dict[str, str]:
    """A site over an empty data folder (its SQLite file has no tables) with one plugin off by default."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "REDIS_URL", "QTAP_"))}
    env["QTAP_DATA_DIR"] = str(tmp_path / "data")
    plugins = make_plugins_dir(tmp_path / "plugins")
    add_plugin_off_by_default(plugins)
    env["QTAP_PLUGINS_DIR"] = str(plugins)
    return env


def notices(stream: str) -> list[str]:
    return [line for line in stream.splitlines() if UNKNOWN in line.lower()]


def tables(env: dict[str, str]) -> list[str]:
    with sqlite3.connect(Path(env["QTAP_DATA_DIR"]) / "qtap.sqlite3") as db:
        return [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]


def test_list_json_needs_no_database(empty_site):
    result = manage("plugins", "list", "--json", env=empty_site)
    assert result.returncode == 0, result.stderr
    items = json.loads(result.stdout)  # stdout stays one JSON array
    by_name = {item["name"]: item for item in items}
    assert sorted(by_name) == sorted([*BUNDLED_NAMES, "qtap-plugin-off"])
    assert_bundled_capabilities([by_name[name] for name in BUNDLED_NAMES])
    off = by_name["qtap-plugin-off"]
    assert (off["status"], off["enabled"], off["enabled_by_default"]) == ("disabled", False, False)
    assert len(notices(result.stderr)) == 1 and notices(result.stdout) == []
    assert "Traceback" not in result.stderr
    assert tables(empty_site) == []  # listing created nothing


def test_list_table_and_show_say_once_that_the_state_is_unknown(empty_site):
    listing = manage("plugins", "list", env=empty_site)
    assert listing.returncode == 0, listing.stderr
    rows = {line.split()[0]: line.split() for line in listing.stdout.splitlines()[1:] if line[:1] != " "}
    assert rows["qtap-plugin-grok"][1:5] == ["GROK", "1.0.0", "loaded", "bundled"]
    assert rows["qtap-plugin-off"][3:5] == ["disabled", "local"]
    assert len(notices(listing.stdout + listing.stderr)) == 1

    shown = manage("plugins", "show", "GROK", "--json", env=empty_site)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["status"] == "loaded"
    assert len(notices(shown.stderr)) == 1

    capable = manage("plugins", "list", "--json", "--capability", "imageGeneration", env=empty_site)
    assert {i["name"] for i in json.loads(capable.stdout)} == {
        "qtap-plugin-openai", "qtap-plugin-google", "qtap-plugin-grok",
    }  # fmt: skip


@pytest.mark.parametrize("action", ["enable", "disable"])
def test_enable_and_disable_say_to_migrate_in_one_line(empty_site, action):
    result = manage("plugins", action, "OPENAI", env=empty_site)
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("CommandError: ") and "run `manage.py migrate`" in line
    assert tables(empty_site) == []


def test_an_unknown_name_is_still_named_before_the_database(empty_site):
    result = manage("plugins", "disable", "NOPE", env=empty_site)
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("CommandError: Unknown plugin 'NOPE'. Available plugins: qtap-plugin-anthropic, ")


def test_a_database_that_cannot_be_reached(empty_site):
    env = {**empty_site, "DATABASE_URL": "postgres://qtap@127.0.0.1:9/qtap?connect_timeout=2"}
    listing = manage("plugins", "list", "--json", env=env)
    assert listing.returncode == 0, listing.stderr
    assert len(json.loads(listing.stdout)) == len(BUNDLED_NAMES) + 1
    assert len(notices(listing.stderr)) == 1
    changed = manage("plugins", "enable", "OPENAI", env=env)
    [line] = changed.stderr.strip().splitlines()
    assert line.startswith("CommandError: ") and "run `manage.py migrate`" in line
