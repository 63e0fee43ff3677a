"""Writing API keys and profiles, and testing connections.

Every function is keyword-only, validates with ``full_clean()`` and raises ``ValidationError`` with
a message a person can act on. Views, the admin and commands call these; none repeat their rules.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from providers import crypto
from providers.contract import ModelInfo
from providers.errors import ProviderError, QtapProviderError, UnknownProviderError
from providers.factory import create_llm_provider
from providers.models import ApiKey, ConnectionProfile, ImageProfile, ProfileBase, canonical_plugin_name
from providers.redaction import redact
from providers.registry import registry
from providers.urlpolicy import validate_base_url

logger = logging.getLogger("qtap.providers")

Profile = TypeVar("Profile", ConnectionProfile, ImageProfile)
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


@sensitive_variables("secret")
def api_key_pattern_warning(*, plugin: str, secret: str) -> str | None:
    """A warning (never a refusal) when ``secret`` does not look like the plugin's keys."""
    found = registry.find(plugin)
    config = found.manifest.provider_config if found else None
    if config is None or not config.api_key_pattern:
        return None
    if re.search(config.api_key_pattern, secret):
        return None
    return (
        f"This does not look like a key for {config.display_name} (expected to match {config.api_key_pattern}). "
        "It was saved anyway; use “Test connection” to check it."
    )


@sensitive_variables("secret")
def api_key_create(*, user: Any, plugin: str, label: str, secret: str, is_active: bool = True) -> ApiKey:
    """Store a new key, encrypted. The returned key's ``warnings`` lists non-blocking remarks."""
    secret = clean_secret(secret)
    key = ApiKey(user=user, plugin=(plugin or "").strip(), label=(label or "").strip(), is_active=is_active)
    key.set_secret(secret)
    key.full_clean()
    key.save()
    warning = api_key_pattern_warning(plugin=key.plugin, secret=secret)
    key.warnings = [warning] if warning else []  # type: ignore[attr-defined]
    return key


@sensitive_variables("secret")
def api_key_update(
    *, api_key: ApiKey, label: str | None = None, secret: str | None = None, is_active: bool | None = None
) -> ApiKey:
    """Change the label, replace the secret (when given, non-empty) or switch the key on or off."""
    warnings: list[str] = []
    if label is not None:
        api_key.label = label.strip()
    if is_active is not None:
        api_key.is_active = is_active
    if secret:
        secret = clean_secret(secret)
        api_key.set_secret(secret)
        warning = api_key_pattern_warning(plugin=api_key.plugin, secret=secret)
        if warning:
            warnings.append(warning)
    api_key.full_clean()
    api_key.save()
    api_key.warnings = warnings  # type: ignore[attr-defined]
    return api_key


def api_key_set_active(*, api_key: ApiKey, is_active: bool) -> ApiKey:
    api_key.is_active = is_active
    api_key.save(update_fields=["is_active", "updated_at"])
    return api_key


def api_key_disable(*, api_key: ApiKey) -> ApiKey:
    return api_key_set_active(api_key=api_key, is_active=False)


def api_key_delete(*, api_key: ApiKey) -> None:
    """Delete the key; the profiles that used it stay, without a key (their api_key becomes empty)."""
    api_key.delete()


def api_key_mark_used(*, api_key: ApiKey) -> None:
    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=timezone.now())


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
    """Change any of name, plugin, model, api_key, base_url, parameters, is_default."""
    unknown = set(changes) - set(_PROFILE_FIELDS)
    if unknown:
        raise TypeError(f"cannot update {', '.join(sorted(unknown))} on a {profile.kind}")
    before = (profile.plugin, profile.base_url)
    for name, value in changes.items():
        setattr(profile, name, value.strip() if isinstance(value, str) else value)
    if (profile.plugin, profile.base_url) != before:
        # The legacy migration's record no longer describes this row.
        profile.migrated_from = None
    return _save_profile(profile)


def connection_profile_update(*, profile: ConnectionProfile, **changes: Any) -> ConnectionProfile:
    return profile_update(profile=profile, **changes)


def image_profile_update(*, profile: ImageProfile, **changes: Any) -> ImageProfile:
    return profile_update(profile=profile, **changes)


def profile_delete(*, profile: ProfileBase) -> None:
    profile.delete()


def set_default_profile(*, profile: Profile) -> Profile:
    """Make ``profile`` its user's default (of its kind); the previous default is unset (in ``save``)."""
    with transaction.atomic():
        profile.is_default = True
        profile.save(update_fields=["is_default", "updated_at"])
    return profile


profile_make_default = set_default_profile


# ---- talking to the provider: connection test, model list -----------------------------------------


@dataclass(frozen=True)
class ConnectionTestResult:
    ok: bool
    message: str
    code: str = ""


class BaseUrlRefused(ValueError):
    """A base URL refused by providers.urlpolicy (the message says why)."""


@dataclass(frozen=True)
class _Target:
    plugin: str
    secret: str | None = field(repr=False)
    base_url: str | None


def _checked_base_url(url: str | None) -> str | None:
    if not url:
        return None
    try:
        return validate_base_url(url)
    except ValidationError as exc:
        raise BaseUrlRefused(" ".join(exc.messages)) from None


def _same_base(a: str, b: str) -> bool:
    return a.strip().rstrip("/").lower() == b.strip().rstrip("/").lower()


def key_destination_refusal(*, key: ApiKey, base_url: str | None, default: str | None) -> str | None:
    """Why ``key`` may not be sent to ``base_url``, or None.

    A stored key goes only to its plugin's default base URL or to the base URL of a saved profile of its
    owner that uses it: a key is never sent somewhere its owner did not choose by saving a profile.
    """
    if not base_url or (default and _same_base(base_url, default)):
        return None
    for model_class in (ConnectionProfile, ImageProfile):
        saved = model_class.objects.filter(user_id=key.user_id, api_key=key).values_list("base_url", flat=True)
        if any(saved_url and _same_base(saved_url, base_url) for saved_url in saved):
            return None
    default_host = f" or to {default}" if default else ""
    return (
        f"The key {key.label!r} is sent only to the base URL of a saved profile that uses it{default_host}. "
        f"Save the profile with {base_url} first, then test it or load its models."
    )


def _target(
    *, plugin_name: str, key: ApiKey | None, base_url: str | None, need_base_url_hint: str
) -> _Target | ConnectionTestResult:
    """What a call needs (plugin, decrypted secret, base URL), or the reason it cannot be made. Sync: ORM."""
    from providers.models import plugin_status

    plugin = registry.find(plugin_name) if plugin_name else None
    if plugin is None or plugin.manifest.provider_config is None:
        return ConnectionTestResult(
            False, f"Provider {plugin_name!r} is not available (its plugin is not loaded).", "provider_unavailable"
        )
    config = plugin.manifest.provider_config
    if plugin_status(plugin.manifest.name) == "provider disabled":
        return ConnectionTestResult(False, f"{config.display_name} is disabled.", "provider_disabled")
    if key is not None and canonical_plugin_name(key.plugin) != plugin.manifest.name:
        return ConnectionTestResult(
            False, f"The API key {key.label!r} is for {key.plugin}, not {plugin.manifest.name}.", "key_mismatch"
        )
    try:
        url = _checked_base_url(base_url)
    except BaseUrlRefused as exc:
        return ConnectionTestResult(False, str(exc), "base_url_refused")
    if config.requires_base_url and not (url or config.base_url_default):
        return ConnectionTestResult(
            False, f"{config.display_name} needs a base URL{need_base_url_hint}.", "missing_base_url"
        )
    if key is None:
        if config.requires_api_key:
            return ConnectionTestResult(False, f"{config.display_name} needs an API key.", "missing_api_key")
        return _Target(plugin.manifest.name, None, url)
    refusal = key_destination_refusal(key=key, base_url=url, default=config.base_url_default)
    if refusal:
        return ConnectionTestResult(False, refusal, "key_destination")
    if not key.is_active:
        return ConnectionTestResult(False, f"The API key {key.label!r} is disabled.", "key_disabled")
    try:
        secret = key.get_secret()
    except crypto.DecryptionError as exc:
        return ConnectionTestResult(False, str(exc), "decryption")
    return _Target(plugin.manifest.name, secret, url)


def _subject_target(subject: ApiKey | ProfileBase, base_url: str | None) -> _Target | ConnectionTestResult:
    if isinstance(subject, ApiKey):
        return _target(
            plugin_name=subject.plugin,
            key=subject,
            base_url=base_url,
            need_base_url_hint=": test a connection profile that uses this key",
        )
    key = getattr(subject, "api_key", None) if subject.api_key_id else None
    return _target(
        plugin_name=subject.plugin, key=key, base_url=base_url or subject.base_url or None, need_base_url_hint=""
    )


def _scrub(message: str, secret: str | None) -> str:
    if secret:
        message = message.replace(secret, "[redacted]")
    return redact(message)


@sensitive_variables("prepared", "target")
async def test_connection(
    subject: ApiKey | ProfileBase | None = None,
    *,
    api_key: ApiKey | None = None,
    profile: ProfileBase | None = None,
    base_url: str | None = None,
) -> ConnectionTestResult:
    """Ask the provider whether a key (or a profile's key and base URL) works.

    Never raises for a provider problem: a failure comes back with the upstream's own message and the
    ProviderError code (``authentication``, ``connection``…), or one of ``provider_unavailable``,
    ``provider_disabled``, ``missing_api_key``, ``missing_base_url``, ``base_url_refused``, ``key_disabled``,
    ``key_mismatch``, ``key_destination``, ``decryption``, ``not_supported``. The key never appears in the message.
    """
    target_subject = subject or profile or api_key
    if target_subject is None:
        raise TypeError("test_connection needs an API key or a profile")
    prepared = await sync_to_async(_subject_target, thread_sensitive=True)(target_subject, base_url)
    if isinstance(prepared, ConnectionTestResult):
        return prepared
    target = prepared
    try:
        provider = create_llm_provider(target.plugin, api_key=target.secret, base_url=target.base_url)
    except (QtapProviderError, ValueError) as exc:
        return ConnectionTestResult(False, _scrub(getattr(exc, "message", str(exc)), target.secret), _code(exc))
    try:
        await provider.validate_key()
    except ProviderError as exc:
        logger.info("connection test of %s failed: %s", target.plugin, exc.code)
        return ConnectionTestResult(False, _scrub(exc.message, target.secret), exc.code)
    except NotImplementedError:
        return ConnectionTestResult(False, f"{target.plugin} cannot test keys yet.", "not_supported")
    except QtapProviderError as exc:
        return ConnectionTestResult(False, _scrub(str(exc), target.secret), _code(exc))
    finally:
        await provider.aclose()
    return ConnectionTestResult(True, "Connection works.", "ok")


def _code(exc: BaseException) -> str:
    return str(getattr(exc, "code", "") or "error")


@sensitive_variables("prepared", "target")
async def list_models(*, plugin: str, api_key: ApiKey | None = None, base_url: str | None = None) -> list[ModelInfo]:
    """The provider's live model list (cached by the provider layer).

    Raises the provider's ``ProviderError``; ``UnknownProviderError`` for a plugin that is not loaded;
    ``BaseUrlRefused`` / ``ValueError`` with a reason for anything that keeps the call from being made.
    """
    prepared = await sync_to_async(_target, thread_sensitive=True)(
        plugin_name=plugin, key=api_key, base_url=base_url, need_base_url_hint=""
    )
    if isinstance(prepared, ConnectionTestResult):
        if prepared.code == "provider_unavailable":
            raise UnknownProviderError(plugin, registry.names())
        if prepared.code == "base_url_refused":
            raise BaseUrlRefused(prepared.message)
        raise ValueError(prepared.message)
    target = prepared
    provider = create_llm_provider(target.plugin, api_key=target.secret, base_url=target.base_url)
    try:
        return await provider.list_models()
    finally:
        await provider.aclose()


test_connection.__test__ = False  # type: ignore[attr-defined]  # its name is not a pytest test
