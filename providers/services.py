"""Writing API keys, profiles and tool settings, and testing connections: the one write path for them.

Every function is keyword-only, validates with ``full_clean()`` and raises ``ValidationError`` with
a message a person can act on. Views, the admin, the forms' ``save()`` and commands call these; none
repeat their rules.

May import: ``providers.calls``, ``providers.contract``, ``providers.crypto``, ``providers.errors``,
``providers.factory``, ``providers.models``, ``providers.redaction``, ``providers.registry``,
``providers.tool_services`` (whose ``tool_settings_update`` and ``tool_server_test`` are served from here).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.core.exceptions import ValidationError
from django.db import transaction
from django.views.decorators.debug import sensitive_variables

from providers import crypto
from providers.calls import Call, CallRefused, Capability, resolve_call, resolve_profile_call
from providers.contract import ModelInfo
from providers.errors import ProviderError, QtapProviderError, UnknownProviderError
from providers.factory import create_llm_provider
from providers.models import ApiKey, ConnectionProfile, ImageProfile, ProfileBase
from providers.redaction import redact
from providers.registry import registry
from providers.tool_services import tool_server_test as tool_server_test  # re-exported: the services' names
from providers.tool_services import tool_settings_update as tool_settings_update

logger = logging.getLogger("qtap.providers")

Profile = TypeVar("Profile", bound=ProfileBase)
MAX_SECRET_LENGTH = 4096
_PROFILE_FIELDS = ("name", "plugin", "model", "api_key", "base_url", "parameters", "is_default")


# ---- API keys -----------------------------------------------------------------------------------


def clean_secret(secret: str) -> str:
    """Strip surrounding space; refuse what can never be a key (it would break the HTTP header)."""
    secret = (secret or "").strip()
    if not secret:
        raise ValidationError({"secret": "Enter the secret of this API key."})
    if len(secret) > MAX_SECRET_LENGTH:
        raise ValidationError({"secret": f"A key is at most {MAX_SECRET_LENGTH} characters."})
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in secret):
        raise ValidationError({"secret": "A key contains no spaces, line breaks or control characters."})
    if not secret.isascii():
        raise ValidationError({"secret": "A key contains only ASCII characters; check what was pasted."})
    return secret


# A pattern that only fixes how a key begins ("^sk-", "^gab[_-]") is said in words: "they start with sk-".
_PREFIX_PATTERN = re.compile(r"\^([\w-]*)(?:\[([\w-]+)\])?")
SAVED_ANYWAY = "It was saved anyway (the provider's pattern is {pattern}); use “Test” to check it."


def _pattern_hint(pattern: str) -> str:
    match = _PREFIX_PATTERN.fullmatch(pattern)
    if match is None or not (match.group(1) or match.group(2)):
        return f"they match {pattern}"
    starts = [match.group(1) + tail for tail in (match.group(2) or "")] or [match.group(1)]
    return "they start with " + " or ".join(starts)


@sensitive_variables("secret")
def api_key_pattern_warning(*, plugin: str, secret: str) -> str | None:
    """A warning (never a refusal) when ``secret`` does not look like the plugin's keys. It says nothing of
    saving: the keys page shows it while the key is typed (``_write_key`` adds ``SAVED_ANYWAY`` once saved)."""
    found = registry.find(plugin)
    config = found.manifest.provider_config if found else None
    if config is None or not config.api_key_pattern:
        return None
    if re.search(config.api_key_pattern, secret):
        return None
    return f"This does not look like a key for {config.display_name} ({_pattern_hint(config.api_key_pattern)})."


@sensitive_variables("secret")
def _write_key(key: ApiKey, secret: str | None) -> ApiKey:
    """Encrypt ``secret`` into ``key`` (when given), validate and save it; ``key.warnings`` lists remarks."""
    if secret is not None:
        secret = clean_secret(secret)
        key.set_secret(secret)
    key.full_clean()
    key.save()
    warning = api_key_pattern_warning(plugin=key.plugin, secret=secret) if secret is not None else None
    if warning:
        config = registry.get(key.plugin).manifest.provider_config  # a warning means the plugin has a pattern
        warning = f"{warning} {SAVED_ANYWAY.format(pattern=config.api_key_pattern if config else '?')}"
    key.warnings = [warning] if warning else []
    return key


@sensitive_variables("secret")
def api_key_create(*, user: Any, plugin: str, label: str, secret: str, is_active: bool = True) -> ApiKey:
    """Store a new key, encrypted. The returned key's ``warnings`` lists non-blocking remarks."""
    key = ApiKey(user=user, plugin=(plugin or "").strip(), label=(label or "").strip(), is_active=is_active)
    return _write_key(key, secret or "")


@sensitive_variables("secret")
def api_key_update(
    *, api_key: ApiKey, label: str | None = None, secret: str | None = None, is_active: bool | None = None
) -> ApiKey:
    """Change the label, replace the secret (when given, non-empty) or switch the key on or off.

    ``api_key`` may also be a new key a form has built (the admin's add form): it is then created, with
    ``secret``.
    """
    if label is not None:
        api_key.label = label.strip()
    if is_active is not None:
        api_key.is_active = is_active
    return _write_key(api_key, secret or None)


def api_key_set_active(*, api_key: ApiKey, is_active: bool) -> ApiKey:
    api_key.is_active = is_active
    api_key.save(update_fields=["is_active", "updated_at"])
    return api_key


def api_key_delete(*, api_key: ApiKey) -> None:
    """Delete the key; the profiles that used it stay, without a key (their api_key becomes empty)."""
    api_key.delete()


def api_keys_rotate() -> tuple[int, list[int]]:
    """Re-encrypt every stored key with the newest encryption key; (how many were, ids no key opens).

    A secret that no configured key opens is left as it is; every other key is still rotated.
    """
    rotated = 0
    failed: list[int] = []
    with transaction.atomic():
        for key in ApiKey.objects.select_for_update().only("pk", "encrypted_secret").order_by("pk"):
            try:
                key.encrypted_secret = crypto.rotate(key.encrypted_secret)
            except crypto.DecryptionError:
                failed.append(key.pk)
                continue
            key.save(update_fields=["encrypted_secret"])
            rotated += 1
    return rotated, failed


# ---- profiles -----------------------------------------------------------------------------------


def _save_profile(profile: Profile) -> Profile:
    profile.full_clean()
    profile.save()
    return profile


def _profile_create(
    model_class: type[Profile],
    *,
    user: Any,
    name: str,
    plugin: str,
    model: str,
    api_key: ApiKey | None,
    base_url: str | None,
    parameters: dict[str, Any] | None,
    is_default: bool,
) -> Profile:
    profile = model_class(
        user=user,
        name=(name or "").strip(),
        plugin=(plugin or "").strip(),
        model=(model or "").strip(),
        api_key=api_key,
        base_url=(base_url or "").strip(),
        parameters=parameters or {},
        is_default=is_default,
    )
    return _save_profile(profile)


def connection_profile_create(
    *,
    user: Any,
    name: str,
    plugin: str,
    model: str,
    api_key: ApiKey | None = None,
    base_url: str | None = None,
    parameters: dict[str, Any] | None = None,
    is_default: bool = False,
) -> ConnectionProfile:
    return _profile_create(
        ConnectionProfile,
        user=user,
        name=name,
        plugin=plugin,
        model=model,
        api_key=api_key,
        base_url=base_url,
        parameters=parameters,
        is_default=is_default,
    )


def image_profile_create(
    *,
    user: Any,
    name: str,
    plugin: str,
    model: str,
    api_key: ApiKey | None = None,
    base_url: str | None = None,
    parameters: dict[str, Any] | None = None,
    is_default: bool = False,
) -> ImageProfile:
    """Like connection_profile_create; the plugin must generate images."""
    return _profile_create(
        ImageProfile,
        user=user,
        name=name,
        plugin=plugin,
        model=model,
        api_key=api_key,
        base_url=base_url,
        parameters=parameters,
        is_default=is_default,
    )


def profile_update(*, profile: Profile, **changes: Any) -> Profile:
    """Change any of name, plugin, model, api_key, base_url, parameters, is_default, and save.

    ``profile`` may already carry changes (a form applies what it validated to its instance) or be a new
    profile a form has built (the admin's add form): it is then created. When its plugin or base URL
    differs from the stored row's, the legacy migration's ``migrated_from`` record no longer describes
    it and is cleared; this is the one place that clears it.
    """
    unknown = set(changes) - set(_PROFILE_FIELDS)
    if unknown:
        raise TypeError(f"cannot update {', '.join(sorted(unknown))} on a {profile.kind}")
    for name, value in changes.items():
        setattr(profile, name, value.strip() if isinstance(value, str) else value)
    stored = None
    if profile.pk is not None:
        stored = type(profile)._default_manager.filter(pk=profile.pk).values_list("plugin", "base_url").first()
    if stored is not None and (profile.plugin, profile.base_url) != stored:
        profile.migrated_from = None
    return _save_profile(profile)


def profile_delete(*, profile: ProfileBase) -> None:
    profile.delete()


def profile_make_default(*, profile: Profile) -> Profile:
    """Make ``profile`` its user's default (of its kind); the previous default is unset (in ``save``)."""
    with transaction.atomic():
        profile.is_default = True
        profile.save(update_fields=["is_default", "updated_at"])
    return profile


# ---- talking to the provider: connection test, model list -----------------------------------------


@dataclass(frozen=True)
class ConnectionTestResult:
    ok: bool
    message: str
    code: str = ""
    tried: bool = True  # False: refused before any request (``resolve_call``), so no host was contacted


class BaseUrlRefused(ValueError):
    """A base URL refused by providers.urlpolicy (the message says why)."""


def _subject_call(subject: ApiKey | ProfileBase, base_url: str | None) -> Call:
    """The call a connection test of ``subject`` makes: a profile's own key and base URL; a key alone at
    ``base_url`` (where it may go, see ``providers.calls.key_destination_refusal``) or its plugin's default."""
    if isinstance(subject, ApiKey):
        return resolve_call(
            plugin=subject.plugin,
            key=subject,
            base_url=base_url,
            missing_base_url_hint=": test a connection profile that uses this key",
        )
    capability: Capability = "images" if isinstance(subject, ImageProfile) else "chat"
    if base_url:
        key = getattr(subject, "api_key", None) if subject.api_key_id else None
        return resolve_call(plugin=subject.plugin, key=key, base_url=base_url, capability=capability)
    return resolve_profile_call(subject, capability=capability)


def _scrub(message: str, secret: str | None) -> str:
    if secret:
        message = message.replace(secret, "[redacted]")
    return redact(message)


@sensitive_variables("call")
async def test_connection(
    subject: ApiKey | ProfileBase | None = None,
    *,
    api_key: ApiKey | None = None,
    profile: ProfileBase | None = None,
    base_url: str | None = None,
) -> ConnectionTestResult:
    """Ask the provider whether a key (or a profile's key and base URL) works.

    Never raises for a provider problem: a failure comes back with the upstream's own message and the
    ProviderError code (``authentication``, ``connection``, ``url_refused``…), a refusal of
    ``providers.calls.resolve_call`` (the same code and words a send or a model list gets), or
    ``not_supported``. The key never appears in the message.
    """
    target_subject = subject or profile or api_key
    if target_subject is None:
        raise TypeError("test_connection needs an API key or a profile")
    try:
        call = await sync_to_async(_subject_call, thread_sensitive=True)(target_subject, base_url)
    except CallRefused as refused:
        return ConnectionTestResult(False, refused.message, refused.code, tried=False)
    try:
        provider = create_llm_provider(call.plugin, api_key=call.api_key, base_url=call.base_url)
    except (QtapProviderError, ValueError) as exc:
        return ConnectionTestResult(False, _scrub(getattr(exc, "message", str(exc)), call.api_key), _code(exc))
    try:
        await provider.validate_key()
    except ProviderError as exc:
        logger.info("connection test of %s failed: %s", call.plugin, exc.code)
        return ConnectionTestResult(False, _scrub(exc.message, call.api_key), exc.code)
    except NotImplementedError:
        return ConnectionTestResult(False, f"{call.plugin} cannot test keys yet.", "not_supported")
    except QtapProviderError as exc:
        return ConnectionTestResult(False, _scrub(str(exc), call.api_key), _code(exc))
    finally:
        await provider.aclose()
    return ConnectionTestResult(True, "Connection works.", "ok")


def _code(exc: BaseException) -> str:
    return str(getattr(exc, "code", "") or "error")


@sensitive_variables("call")
async def list_models(*, plugin: str, api_key: ApiKey | None = None, base_url: str | None = None) -> list[ModelInfo]:
    """The provider's live model list (cached by the provider layer).

    Raises the provider's ``ProviderError``; ``UnknownProviderError`` for a plugin that is not loaded;
    ``BaseUrlRefused`` / ``ValueError`` with a reason for anything that keeps the call from being made.
    """
    try:
        call = await sync_to_async(resolve_call, thread_sensitive=True)(plugin=plugin, key=api_key, base_url=base_url)
    except CallRefused as refused:
        if refused.code == "provider_unavailable" and registry.find(plugin) is None:
            raise UnknownProviderError(plugin, registry.names()) from None
        if refused.code == "base_url_refused":
            raise BaseUrlRefused(refused.message) from None
        raise ValueError(refused.message) from None
    provider = create_llm_provider(call.plugin, api_key=call.api_key, base_url=call.base_url)
    try:
        return await provider.list_models()
    finally:
        await provider.aclose()


test_connection.__test__ = False  # type: ignore[attr-defined]  # its name is not a pytest test
