"""A site with broken plugins still starts: a real process with QTAP_PLUGINS_DIR pointing at the bundled
plugins plus every broken folder. ``manage.py check``, ``manage.py plugins list`` and the log each give
every failure's reason in one line, and every good plugin loads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from django.conf import settings

from tests.host.conftest import BROKEN_NAMES, BUNDLED_NAMES, make_plugins_dir
from tests.host.test_loader import EXPECTED_REASONS


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("isolation")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "REDIS_URL", "QTAP_"))}
    env["QTAP_DATA_DIR"] = str(root / "data")
    env["QTAP_PLUGINS_DIR"] = str(make_plugins_dir(root / "plugins", *BROKEN_NAMES))
    manage("migrate", "--no-input", "-v", "0", env=env)
    return env


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result


def failure_log_lines(stderr: str) -> dict[str, str]:
    lines = [line for line in stderr.splitlines() if " WARNING qtap.plugins: plugin " in line]
    return {line.split("plugin ", 1)[1].split(" failed to load: ")[0]: line for line in lines}


def test_plugins_list_shows_every_good_plugin_loaded_and_every_broken_one_failed(site):
    result = manage("plugins", "list", "--json", env=site)
    items = {item["name"]: item for item in json.loads(result.stdout)}
    assert sorted(items) == sorted(BUNDLED_NAMES + BROKEN_NAMES)
    assert {items[name]["status"] for name in BUNDLED_NAMES} == {"loaded"}
    for name, words in EXPECTED_REASONS.items():
        item = items[name]
        assert (item["status"], item["source"]) == ("failed", "local")
        assert words in item["error"] and "\n" not in item["error"]
    # the log of the same process: one line per broken plugin, with its reason
    logged = failure_log_lines(result.stderr)
    assert sorted(logged) == BROKEN_NAMES
    for name, words in EXPECTED_REASONS.items():
        assert words in logged[name]


def test_plugins_list_table_gives_each_reason_in_one_line(site):
    lines = manage("plugins", "list", env=site).stdout.splitlines()
    for name, words in EXPECTED_REASONS.items():
        [row] = [i for i, line in enumerate(lines) if line.startswith(name + " ")]
        assert "failed" in lines[row].split()
        assert lines[row + 1].startswith("    error: ") and words in lines[row + 1]


def test_manage_check_warns_once_per_broken_plugin(site):
    result = manage("check", env=site)
    output = result.stdout + result.stderr
    warnings = [line for line in output.splitlines() if "(providers.W001)" in line]
    assert len(warnings) == len(BROKEN_NAMES)
    for name, words in EXPECTED_REASONS.items():
        [line] = [w for w in warnings if w.startswith(f"{name}: (providers.W001) Plugin {name} failed to load: ")]
        assert words in line
    assert "System check identified" in output


def test_the_site_serves_and_a_profile_of_a_broken_plugin_is_flagged(site):
    script = textwrap.dedent(
        """
        from django.contrib.auth import get_user_model
        from django.test import Client
        from providers.models import ConnectionProfile
        user = get_user_model().objects.create_user("iso", password="a long enough password")
        ConnectionProfile.objects.create(user=user, name="p", plugin="qtap-plugin-import-error", model="m")
        client = Client()
        client.force_login(user)
        page = client.get("/settings/plugins/")
        print("STATUS", page.status_code)
        html = page.content.decode()
        print("LISTED", "qtap-plugin-import-error" in html, "boom while importing" in html)
        """
    )
    result = manage("shell", "-c", script, env={**site, "QTAP_ALLOWED_HOSTS": "testserver"})
    assert "STATUS 200" in result.stdout
    assert "LISTED True True" in result.stdout

    output = "".join(
        manage("check", "--database", "default", env=site).__getattribute__(s) for s in ("stdout", "stderr")
    )
    [w002] = [line for line in output.splitlines() if "(providers.W002)" in line]
    assert "1 connection profile on database 'default' references plugin 'qtap-plugin-import-error'" in w002
