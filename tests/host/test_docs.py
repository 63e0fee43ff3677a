"""plugins/README.md documents every manifest field, every contract method and every error code.

Walks the real models and classes, so a new field or method fails this test until it is documented.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from pydantic import BaseModel

from providers import errors
from providers.contract import ImageProvider, LLMProvider, ProviderPlugin
from providers.manifest import Manifest

README = Path(settings.BASE_DIR) / "plugins" / "README.md"
TEXT = README.read_text(encoding="utf-8")
MENTIONED = set(re.findall(r"`([^`\n]+)`", TEXT))


def _model_of(annotation: object) -> type[BaseModel] | None:
    """The pydantic model inside an annotation such as ``ProviderConfig | None``."""
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def manifest_paths(model: type[BaseModel] = Manifest, prefix: str = "") -> Iterator[str]:
    """Every key of manifest.json, as a dotted path in its camelCase spelling."""
    for name, field in model.model_fields.items():
        path = prefix + (field.alias or name)
        yield path
        nested = _model_of(field.annotation)
        if nested is not None:
            yield from manifest_paths(nested, path + ".")


def contract_members() -> Iterator[tuple[str, str]]:
    for cls in (LLMProvider, ImageProvider, ProviderPlugin):
        own = {k: v for k, v in vars(cls).items() if not k.startswith("_")}
        for name in own:
            yield cls.__name__, name
        for name in getattr(cls, "__annotations__", {}):
            yield cls.__name__, name


def error_classes() -> Iterator[type[errors.QtapProviderError]]:
    for _, obj in inspect.getmembers(errors, inspect.isclass):
        if issubclass(obj, errors.QtapProviderError) and obj is not errors.QtapProviderError:
            yield obj


def test_the_walk_finds_the_nested_fields():
    paths = set(manifest_paths())
    assert {"providerConfig.colors.bg", "providerConfig.attachmentSupport.maxBytes"} <= paths
    assert "compatibility.qtapVersion" in paths
    assert len(paths) > 30


@pytest.mark.parametrize("path", sorted(manifest_paths()))
def test_every_manifest_field_is_documented(path):
    assert path in MENTIONED, f"plugins/README.md does not document the manifest key `{path}`"


@pytest.mark.parametrize(("cls", "member"), sorted(set(contract_members())))
def test_every_contract_member_is_documented(cls, member):
    section = TEXT.split(f"### `{cls}`", 1)
    assert len(section) == 2, f"plugins/README.md has no section for {cls}"
    body = section[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
    assert re.search(rf"`{member}[(`]", body), f"{cls}.{member} is not documented in its section"


def test_the_contract_has_the_spec_methods():
    members = set(contract_members())
    for name in ("stream", "complete", "list_models", "validate_key", "aclose"):
        assert ("LLMProvider", name) in members
    assert ("ImageProvider", "generate") in members
    assert {("ProviderPlugin", "create_provider"), ("ProviderPlugin", "create_image_provider")} <= members


@pytest.mark.parametrize("cls", sorted(error_classes(), key=lambda c: c.__name__), ids=lambda c: c.__name__)
def test_every_error_and_code_is_documented(cls):
    assert cls.__name__ in MENTIONED, f"{cls.__name__} is not documented"
    assert cls.code in MENTIONED, f"code {cls.code!r} of {cls.__name__} is not documented"


def test_the_rules_of_the_contract_are_all_there():
    for words in (
        "Event order",
        "close the upstream",
        "`base_url`",
        "Attachments first",
        "Error translation",
        "Retries",
        "Timeouts",
        "Logging",
        "`qtap.plugins`",
        "tests/fakes/server.py",
    ):
        assert words.lower() in TEXT.lower(), words


def test_the_openai_manifest_really_uses_every_key():
    data = json.loads((Path(settings.BASE_DIR) / "plugins/dist/qtap-plugin-openai/manifest.json").read_text())

    def keys(value: object, prefix: str = "") -> Iterator[str]:
        if isinstance(value, dict):
            for key, inner in value.items():
                yield prefix + key
                yield from keys(inner, prefix + key + ".")

    assert set(keys(data)) == set(manifest_paths())


def test_the_schema_regeneration_command_is_documented():
    assert "m.json_schema()" in TEXT and "> plugins/manifest.schema.json" in TEXT
