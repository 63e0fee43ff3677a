"""System checks of the plugin host (ids providers.E0xx / providers.W0xx).

May import: ``providers.crypto``, ``providers.models``, ``providers.registry``; ``ProvidersConfig.ready()``
imports it, after the models.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.db import connections, router
from django.db.models import Count

from providers.crypto import InvalidEncryptionKeys, build_multifernet
from providers.models import ConnectionProfile, ImageProfile
from providers.registry import registry


@register(Tags.security)
def check_encryption_keys(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
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


@register(Tags.database)
def check_profile_plugins(app_configs: Any = None, databases: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Profiles whose plugin is not loaded (removed, renamed or failing): they cannot send until it is back.

    A database check, so Django runs it only when databases are asked for (``check --database``,
    ``migrate``); tables that do not exist yet (before the first migrate) are skipped.
    """
    messages: list[CheckMessage] = []
    for alias in databases or ():
        tables = set(connections[alias].introspection.table_names())
        for model in (ConnectionProfile, ImageProfile):
            if model._meta.db_table not in tables or not router.allow_migrate_model(alias, model):
                continue
            counts = model._default_manager.using(alias).values_list("plugin").annotate(n=Count("pk")).order_by()
            for plugin, count in sorted(counts):
                if registry.find(plugin) is not None:
                    continue
                what = model._meta.verbose_name if count == 1 else model._meta.verbose_name_plural
                messages.append(
                    Warning(
                        f"{count} {what} on database {alias!r} reference{'s' if count == 1 else ''} "
                        f"plugin {plugin!r}, which is not loaded",
                        hint="Install or fix the plugin (`manage.py plugins list` shows why it failed), or move "
                        "the profiles to another plugin in the admin. Until then they show "
                        '"provider unavailable" and cannot send.',
                        obj=plugin,
                        id="providers.W002",
                    )
                )
    return messages
