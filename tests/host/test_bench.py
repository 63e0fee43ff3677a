"""The startup benchmark's machinery (the benchmark itself runs with ``python -m bench``)."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from bench.plugin_startup import plugin_import_times, sample

LOG = """\
import time: self [us] | cumulative | imported package
import time:       100 |        100 |   providers.contract
import time:       300 |        300 |     httpx
import time:       200 |        900 |   qtap_plugins.qtap_plugin_a.provider
import time:        50 |         50 |     qtap_plugins.qtap_plugin_a.helpers
import time:       100 |        400 |   qtap_plugins.qtap_plugin_a.image_provider
import time:        80 |         80 |   qtap_plugins.qtap_plugin_b.provider
"""


def test_import_times_add_up_each_plugins_outermost_modules():
    assert plugin_import_times(LOG) == {"qtap_plugin_a": 1.3, "qtap_plugin_b": 0.08}


def test_one_sample_loads_the_bundled_plugins_and_none_from_an_empty_dir(tmp_path):
    with_plugins = sample(Path(settings.BASE_DIR) / "plugins", tmp_path / "data")
    assert (with_plugins["loaded"], with_plugins["failed"]) == (10, 0)  # eight providers, two tool plugins
    assert 0 < with_plugins["loader_ms"] < with_plugins["setup_ms"]
    assert set(with_plugins["imports"]) >= {"qtap_plugin_openai", "qtap_plugin_anthropic"}
    (tmp_path / "empty").mkdir()
    without = sample(tmp_path / "empty", tmp_path / "data")
    assert (without["loaded"], without["imports"]) == (0, {})
