"""A plugin shipped as a Python distribution is found through the ``qtap.plugins`` entry-point group.

The example distribution in tests/thirdparty_plugin/ is made discoverable without installing it:
a ``.dist-info`` folder with its entry point goes on sys.path next to the package itself.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from providers.contract import Attachment, ChatRequest, Finish, Message, TextDelta, Usage
from providers.errors import UnsupportedAttachmentError
from providers.factory import create_llm_provider
from providers.loader import ENTRY_POINT_GROUP, discover
from tests.host.conftest import BUNDLED_NAMES

THIRDPARTY = Path(__file__).resolve().parent.parent / "thirdparty_plugin"


def fake_install(site: Path, entry_point_value: str = "qtap_plugin_example") -> None:
    dist_info = site / "qtap_plugin_example-0.1.0.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: qtap-plugin-example\nVersion: 0.1.0\n")
    (dist_info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\nexample = {entry_point_value}\n")


@pytest.fixture
def installed(tmp_path, monkeypatch) -> None:
    fake_install(tmp_path / "site")
    monkeypatch.syspath_prepend(str(THIRDPARTY))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))


def test_entry_point_plugin_is_discovered_after_bundled_and_local(installed, plugins_dir):
    directory = plugins_dir("qtap-plugin-future")
    found = [(c.source, c.directory.name) for c in discover(directory, entry_points=True)]
    assert found[: len(BUNDLED_NAMES)] == [("bundled", n) for n in BUNDLED_NAMES]
    assert found[len(BUNDLED_NAMES)] == ("local", "qtap-plugin-future")
    assert ("entrypoint", "qtap_plugin_example") in found[len(BUNDLED_NAMES) + 1 :]


async def test_entry_point_plugin_loads_and_streams(installed, plugins_dir, loaded):
    registry = loaded(plugins_dir(), entry_points=True)
    assert registry.source("qtap-plugin-example") == "entrypoint"
    assert registry.get("EXAMPLE").manifest.title == "Example"
    assert registry.path("qtap-plugin-example") == (THIRDPARTY / "qtap_plugin_example").resolve()
    assert sorted(registry.names()) == sorted([*BUNDLED_NAMES, "qtap-plugin-example"])

    provider = create_llm_provider("EXAMPLE", using=registry)
    request = ChatRequest(model="example-1", messages=(Message(role="user", content="hi there"),))
    events = [event async for event in provider.stream(request)]
    await provider.aclose()
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Hello from the example plugin."
    assert events[-1] == Finish("stop")
    assert [e for e in events if isinstance(e, Usage)] == [Usage(input_tokens=2, output_tokens=4)]

    # attachments are refused before anything else happens, naming the file
    with_image = ChatRequest(
        model="example-1",
        messages=(Message(role="user", content="look", attachments=(Attachment("cat.png", "image/png", b"x"),)),),
    )
    with pytest.raises(UnsupportedAttachmentError, match=r"cat\.png"):
        await provider.complete(with_image)


def test_entry_point_naming_a_missing_package_fails_alone(tmp_path, monkeypatch, plugins_dir, loaded):
    fake_install(tmp_path / "site", entry_point_value="qtap_plugin_nowhere")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    registry = loaded(plugins_dir(), entry_points=True)
    assert sorted(registry.names()) == BUNDLED_NAMES
    [(name, reason)] = registry.failures().items()
    assert name == "example (entry point qtap_plugin_nowhere)"
    assert "'qtap_plugin_nowhere' is not an importable package" in reason
    assert registry.failure(name).source == "entrypoint"
