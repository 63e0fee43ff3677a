"""plugins/README.md documents every manifest field, every contract method and every error code, and
README.md's Settings table every environment variable qtap_site/settings.py reads.

Walks the real models, classes and settings source, so a new field, method or setting fails this test
until it is documented.
"""

from __future__ import annotations

import ast
import inspect
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from pydantic import BaseModel

from providers import errors
from providers.contract import ImageProvider, LLMProvider, ProviderPlugin, ToolProvider
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
    for cls in (LLMProvider, ImageProvider, ToolProvider, ProviderPlugin):
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
    assert {("ToolProvider", "list_tools"), ("ToolProvider", "call")} <= members
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


def manifest_keys(value: object, prefix: str = "") -> Iterator[str]:
    """Every key path a manifest uses (the items of a list, such as ``modelRules``, under the list's key)."""
    if isinstance(value, dict):
        for key, inner in value.items():
            yield prefix + key
            yield from manifest_keys(inner, prefix + key + ".")
    elif isinstance(value, list):
        for item in value:
            yield from manifest_keys(item, prefix)


# A thinking budget is a knob OpenAI's models do not have: Anthropic's manifest shows it. A tool plugin's
# block is a tool plugin's: qtap-plugin-web-fetch's manifest shows every key of it.
NOT_OPENAI = {f"providerConfig.modelRules.reasoning.budgetTokens{tail}" for tail in ("", ".min", ".max")}
TOOL_KEYS = {path for path in manifest_paths() if path == "toolConfig" or path.startswith("toolConfig.")}


def test_the_openai_manifest_really_uses_every_key():
    data = json.loads((Path(settings.BASE_DIR) / "plugins/dist/qtap-plugin-openai/manifest.json").read_text())
    assert set(manifest_keys(data)) == set(manifest_paths()) - NOT_OPENAI - TOOL_KEYS


def test_every_manifest_key_is_used_by_a_bundled_plugin():
    used: set[str] = set()
    for path in (Path(settings.BASE_DIR) / "plugins/dist").glob("*/manifest.json"):
        used |= set(manifest_keys(json.loads(path.read_text())))
    assert used >= set(manifest_paths()), set(manifest_paths()) - used


def test_the_schema_regeneration_command_is_documented():
    assert "m.json_schema()" in TEXT and "> plugins/manifest.schema.json" in TEXT


# ---- README.md's Settings table ----------------------------------------------------------------

SITE_README = Path(settings.BASE_DIR) / "README.md"
SETTINGS_SOURCE = Path(settings.BASE_DIR) / "qtap_site" / "settings.py"


def _is_os_environ(node: ast.expr) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "environ" and isinstance(node.value, ast.Name)


def _string(node: ast.expr | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _name_read(node: ast.AST, readers: set[str]) -> str | None:
    """The variable ``node`` reads, if it is a read of the environment."""
    if isinstance(node, ast.Call) and node.args:
        func = node.func
        by_reader = (isinstance(func, ast.Name) and func.id in readers) or (
            isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in readers
        )
        by_os = isinstance(func, ast.Attribute) and (
            _is_os_environ(func.value) or (func.attr == "getenv" and isinstance(func.value, ast.Name))
        )
        return _string(node.args[0]) if by_reader or by_os else None
    if isinstance(node, ast.Subscript) and _is_os_environ(node.value):
        return _string(node.slice)
    if isinstance(node, ast.Compare) and any(_is_os_environ(c) for c in node.comparators):
        return _string(node.left)
    return None


def environment_variables_read(source: str) -> set[str]:
    """Every variable name the settings source reads: through an ``environ.Env()`` reader (``env("X")``,
    ``env.str("X")``, ``env.int``, ``env.bool``, ``env.list``, ``env.db_url`` ... and the names declared in
    ``environ.Env(X=(type, default))``), or through ``os.environ`` / ``os.getenv`` in any form."""
    tree = ast.parse(source)
    readers = {"env"}
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            func = node.value.func
            if isinstance(func, ast.Attribute) and func.attr == "Env":
                readers |= {target.id for target in node.targets if isinstance(target, ast.Name)}
                names |= {kw.arg for kw in node.value.keywords if kw.arg}
    names |= {name for node in ast.walk(tree) if (name := _name_read(node, readers))}
    return names


def documented_settings() -> set[str]:
    """The variables named in the first column of README.md's Settings table."""
    section = SITE_README.read_text(encoding="utf-8").split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([A-Z][A-Z0-9_]*)` \|", section, flags=re.MULTILINE))


SETTINGS_READ = environment_variables_read(SETTINGS_SOURCE.read_text(encoding="utf-8"))


def test_the_settings_walk_finds_every_form_of_read():
    source = """
import os
import environ
reader = environ.Env(A_DECLARED=(bool, False))
env = environ.Env()
a = env("A_CALL"); b = env.str("A_STR"); c = env.int("A_INT", default=1); d = env.bool("A_BOOL")
e = env.float("A_FLOAT"); f = env.list("A_LIST"); g = env.db_url("A_DB"); h = reader.json("A_OTHER_READER")
i = os.environ["A_ITEM"]; j = os.environ.get("A_GET"); k = os.getenv("A_GETENV")
if "A_IN" in os.environ: pass
os.environ.setdefault("A_SETDEFAULT", "x")
unrelated = {"key": "NOT_A_SETTING"}.get("NOT_A_SETTING_EITHER")
"""
    assert environment_variables_read(source) == {
        "A_DECLARED", "A_CALL", "A_STR", "A_INT", "A_BOOL", "A_FLOAT", "A_LIST", "A_DB", "A_OTHER_READER",
        "A_ITEM", "A_GET", "A_GETENV", "A_IN", "A_SETDEFAULT",
    }  # fmt: skip
    assert {"DATABASE_URL", "REDIS_URL", "QTAP_DATA_DIR", "QTAP_GENERATION_STALE_SECONDS"} <= SETTINGS_READ
    assert {"DATABASE_URL", "QTAP_DATA_DIR"} <= documented_settings()


@pytest.mark.parametrize("name", sorted(SETTINGS_READ))
def test_every_setting_read_is_in_the_readme_settings_table(name):
    assert name in documented_settings(), f"README.md's Settings table has no row for `{name}`"
