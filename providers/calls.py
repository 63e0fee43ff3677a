"""Can this profile (or this key) make a call now, and with what? One answer for every caller.

The connection test, the model list, a chat send and an image generation all ask ``resolve_call``; each
refusal has one code and one wording whichever of them asks, so a person sees the same reason for the
same problem on every page. Checked in this order, each at the moment of use:

1. the plugin is loaded and has the capability asked for          → ``provider_unavailable``
2. it is enabled (``enabled`` preloaded, or one query)             → ``provider_unavailable``
3. the key is for this plugin                                      → ``key_mismatch``
4. the base URL passes the outbound-URL policy now                 → ``base_url_refused``
5. a base URL is there where the plugin needs one                  → ``missing_base_url``
6. a key the provider needs is there and switched on               → ``missing_api_key`` / ``key_disabled``
7. the key may go to this base URL (``key_destination_refusal``)    → ``key_destination``
8. the key decrypts with the configured encryption keys            → ``missing_api_key``

Synchronous: it reads the database (plugin state, the profiles a key is saved with).

May import: ``providers.crypto``, ``providers.urlpolicy``, ``providers.manifest``, ``providers.models``,
``providers.registry``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from providers import crypto, urlpolicy
from providers.manifest import ProviderConfig
from providers.models import ApiKey, ConnectionProfile, ImageProfile, PluginState, canonical_plugin_name
from providers.registry import registry

Capability = Literal["chat", "images"]


@dataclass(frozen=True)
class Call:
    """What a call is made with: the plugin's canonical name, its provider config, the decrypted key
    (None for a keyless provider) and the base URL (None for the plugin's default)."""

    plugin: str
    provider_name: str
    config: ProviderConfig
    api_key: str | None = field(repr=False)
    base_url: str | None


class CallRefused(Exception):
    """The call cannot be made; ``code`` is stable (pages and websocket frames show it), ``message`` says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def undecryptable_message(key: ApiKey) -> str:
    return (
        f"The API key {key.label!r} cannot be decrypted with the configured encryption keys "
        "(QTAP_ENCRYPTION_KEYS); enter the key again."
    )


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


def resolve_call(
    *,
    plugin: str,
    key: ApiKey | None,
    base_url: str | None,
    capability: Capability = "chat",
    saved_together: bool = False,
    enabled: Mapping[str, bool] | None = None,
    missing_base_url_hint: str = "",
) -> Call:
    """The call ``plugin`` can make with ``key`` at ``base_url``, or ``CallRefused``.

    ``saved_together``: the key and base URL come from one saved profile (so the key may go there).
    ``enabled``: plugin name → enabled, preloaded for a batch (``PluginState.objects.enabled_states``).
    """
    found = registry.find(plugin) if plugin else None
    config = found.manifest.provider_config if found else None
    if found is None or config is None:
        raise CallRefused(
            "provider_unavailable", f"The provider {plugin!r} is not available (its plugin is not loaded)."
        )
    manifest = found.manifest
    if capability == "images" and not config.capabilities.image_generation:
        raise CallRefused("provider_unavailable", f"{config.display_name} does not generate images.")
    states = enabled if enabled is not None and manifest.name in enabled else None
    is_enabled = states[manifest.name] if states is not None else PluginState.objects.is_enabled(manifest)
    if not is_enabled:
        raise CallRefused("provider_unavailable", f"The provider {manifest.title} is disabled.")
    if key is not None and canonical_plugin_name(key.plugin) != manifest.name:
        raise CallRefused("key_mismatch", f"The API key {key.label!r} is for {key.plugin}, not {manifest.name}.")
    target = base_url or config.base_url_default
    if target and (refusal := urlpolicy.refusal_at_use(target)):
        raise CallRefused("base_url_refused", refusal)
    if config.requires_base_url and not target:
        raise CallRefused("missing_base_url", f"{config.display_name} needs a base URL{missing_base_url_hint}.")
    usable_key = key if key is not None and key.is_active else None
    if usable_key is None and config.requires_api_key:
        if key is not None:
            raise CallRefused("key_disabled", f"The API key {key.label!r} is disabled.")
        raise CallRefused("missing_api_key", f"{config.display_name} needs an API key; choose one for this profile.")
    secret = None
    if usable_key is not None:
        if not saved_together:
            refusal = key_destination_refusal(key=usable_key, base_url=base_url, default=config.base_url_default)
            if refusal:
                raise CallRefused("key_destination", refusal)
        try:
            secret = usable_key.get_secret()
        except crypto.DecryptionError:
            raise CallRefused("missing_api_key", undecryptable_message(usable_key)) from None
    return Call(manifest.name, manifest.provider_name or "", config, secret, base_url or None)


def resolve_profile_call(
    profile: Any, *, capability: Capability = "chat", enabled: Mapping[str, bool] | None = None
) -> Call:
    """``resolve_call`` for a saved connection or image profile (its key goes to its own base URL)."""
    key = profile.api_key if profile.api_key_id else None
    return resolve_call(
        plugin=profile.plugin,
        key=key,
        base_url=profile.base_url or None,
        capability=capability,
        saved_together=True,
        enabled=enabled,
    )
