"""The manifest model: strict, camelCase, one-line errors that name the key; and its shipped JSON Schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.conf import settings

from providers.errors import ManifestError
from providers.manifest import Manifest, json_schema, load_manifest, parse_manifest
from tests.host.conftest import BUNDLED_DIR, BUNDLED_NAMES, manifest_data

SCHEMA_FILE = Path(settings.BASE_DIR) / "plugins" / "manifest.schema.json"


@pytest.mark.parametrize("name", BUNDLED_NAMES)
def test_bundled_manifests_are_valid_and_round_trip(name):
    path = BUNDLED_DIR / name / "manifest.json"
    manifest = load_manifest(path)
    assert manifest.name == name
    # Written back by alias, the model gives the file's own content: no key is lost or renamed.
    raw = json.loads(path.read_text())
    assert manifest.model_dump(by_alias=True, mode="json", exclude_unset=True) == raw


def test_camel_case_keys_map_to_the_model():
    manifest = parse_manifest(manifest_data(apiKeyPattern="^sk-", baseUrlDefault="https://x.test/v1"))
    assert manifest.provider_config.api_key_pattern == "^sk-"
    assert manifest.provider_config.base_url_default == "https://x.test/v1"
    assert manifest.enabled_by_default is True
    assert manifest.compatibility.qtap_version == ">=0.1"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m.update(colour="red"), "unknown key 'colour'"),
        (lambda m: m["providerConfig"].update(colour="red"), "unknown key 'providerConfig.colour'"),
        (lambda m: m["providerConfig"]["colors"].update(fg="#000000"), "unknown key 'providerConfig.colors.fg'"),
        (lambda m: m.update(name="openai"), "name: String should match pattern"),
        (lambda m: m.update(version="1.0"), "version must be semver"),
        (lambda m: m["providerConfig"].update(providerName="open-ai"), "providerConfig.providerName"),
        (lambda m: m["providerConfig"].update(abbreviation="O"), "providerConfig.abbreviation"),
        (lambda m: m["providerConfig"]["colors"].update(bg="green"), "providerConfig.colors.bg"),
        (lambda m: m["providerConfig"].update(apiKeyPattern="(unclosed"), "apiKeyPattern is not a valid regular"),
        (lambda m: m["providerConfig"].update(baseUrlDefault="api.test"), "baseUrlDefault must be an absolute"),
        (lambda m: m.update(compatibility={"qtapVersion": "soon"}), "not a version specifier"),
        (lambda m: m.update(capabilities=["LLM_PROVIDER", "TELEPATHY"]), "capabilities.1"),
        (lambda m: m.pop("providerConfig"), "providerConfig is required when capabilities include LLM_PROVIDER"),
        (
            lambda m: m.update(capabilities=["LLM_PROVIDER", "IMAGE_PROVIDER"]),
            "IMAGE_PROVIDER and providerConfig.capabilities.imageGeneration disagree",
        ),
        (
            lambda m: m["providerConfig"].update(attachmentSupport={"supported": True}),
            "supported is true but mimeTypes is empty",
        ),
    ],
)
def test_invalid_manifests_say_why_in_one_line(change, message):
    data = manifest_data()
    change(data)
    with pytest.raises(ManifestError) as info:
        parse_manifest(data, source="demo/manifest.json")
    text = str(info.value)
    assert message in text
    assert text.startswith("demo/manifest.json: ")
    assert "\n" not in text


def test_not_an_object(tmp_path):
    path = tmp_path / "manifest.json"
    path.write_text("[1, 2]")
    with pytest.raises(ManifestError, match="must be a JSON object"):
        load_manifest(path)


def test_missing_file_and_bad_json(tmp_path):
    with pytest.raises(ManifestError, match="cannot read manifest"):
        load_manifest(tmp_path / "manifest.json")
    (tmp_path / "manifest.json").write_text('{"name": ')
    with pytest.raises(ManifestError, match="malformed JSON at line 1"):
        load_manifest(tmp_path / "manifest.json")


def test_compatibility():
    data = manifest_data()
    data["compatibility"] = {"qtapVersion": ">=0.1,<0.2"}
    manifest = parse_manifest(data)
    assert manifest.is_compatible("0.1.5")
    assert not manifest.is_compatible("0.2.0")
    assert not manifest.is_compatible("not a version")


def test_committed_schema_is_the_generated_one():
    # Regenerate with the command documented in plugins/README.md when this fails.
    assert json.loads(SCHEMA_FILE.read_text()) == json_schema()


def test_schema_is_strict_and_spelled_like_the_files():
    schema = json_schema()
    assert schema["additionalProperties"] is False
    assert "enabledByDefault" in schema["properties"]
    config = schema["$defs"]["ProviderConfig"]
    assert config["additionalProperties"] is False
    assert {"providerName", "apiKeyPattern", "attachmentSupport", "legacyNames"} <= set(config["properties"])
    assert set(schema["properties"]) == {f.alias for f in Manifest.model_fields.values()}
