"""System checks of the plugin host (ids providers.E0xx / providers.W0xx)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

from providers.registry import registry


@register(Tags.security)
def check_encryption_keys(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    from providers.crypto import InvalidEncryptionKeys, build_multifernet

    if not settings.QTAP_ENCRYPTION_KEYS:
        return []
    try:
        build_multifernet(settings.QTAP_ENCRYPTION_KEYS)
    except InvalidEncryptionKeys as exc:
        return [
            Error(
                f"QTAP_ENCRYPTION_KEYS is invalid: {exc}",
                hint="Each key must be a url-safe base64 Fernet key (32 bytes). Generate one with "
                "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`.",
                id="providers.E001",
            )
        ]
    return []


@register()
def check_plugin_failures(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    return [
        Warning(
            f"Plugin {name} failed to load: {reason}",
            hint="Fix or remove the plugin folder; `manage.py plugins show NAME` gives details.",
            obj=name,
            id="providers.W001",
        )
        for name, reason in sorted(registry.failures().items())
    ]
