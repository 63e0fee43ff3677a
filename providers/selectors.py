"""Queries of keys and profiles, always scoped to one user.

A row of another user is indistinguishable from a row that does not exist: the ``get_*`` functions
raise the model's ``DoesNotExist`` for both (views answer 404, e.g. with ``get_object_or_404`` over the
``*_for`` querysets).

May import: ``providers.models`` only.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from django.db.models import QuerySet

from providers.models import ApiKey, ConnectionProfile, ImageProfile, PluginState, plugin_status

Row = TypeVar("Row", ApiKey, ConnectionProfile, ImageProfile)


def api_keys_for(user: Any, *, plugin: str | None = None, active_only: bool = False) -> QuerySet[ApiKey]:
    keys = ApiKey.objects.filter(user=user)
    if plugin:
        keys = keys.filter(plugin=plugin)
    if active_only:
        keys = keys.filter(is_active=True)
    return keys


def get_api_key_for(user: Any, pk: Any) -> ApiKey:
    return api_keys_for(user).get(pk=pk)


def profiles_for(user: Any) -> QuerySet[ConnectionProfile]:
    return ConnectionProfile.objects.filter(user=user).select_related("api_key")


def get_profile_for(user: Any, pk: Any) -> ConnectionProfile:
    return profiles_for(user).get(pk=pk)


def default_profile_for(user: Any) -> ConnectionProfile | None:
    """The user's default profile, else their first one, else None."""
    profiles = profiles_for(user)
    return profiles.filter(is_default=True).first() or profiles.first()


def image_profiles_for(user: Any) -> QuerySet[ImageProfile]:
    return ImageProfile.objects.filter(user=user).select_related("api_key")


def get_image_profile_for(user: Any, pk: Any) -> ImageProfile:
    return image_profiles_for(user).get(pk=pk)


def default_image_profile_for(user: Any) -> ImageProfile | None:
    profiles = image_profiles_for(user)
    return profiles.filter(is_default=True).first() or profiles.first()


def with_statuses(rows: Iterable[Row]) -> list[Row]:
    """``rows`` with each one's plugin ``status`` known, from one query whatever their number."""
    listed = list(rows)
    enabled = PluginState.objects.enabled_states()
    for row in listed:
        row.known_status = plugin_status(row.plugin, enabled)
    return listed
