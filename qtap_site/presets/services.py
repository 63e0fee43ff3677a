"""Writing presets, and the starter presets offered to every user (data in ``data/starter_presets.json``,
not code: editing that file changes what "Add the starter presets" adds).

Keyword-only; each write validates with ``full_clean()`` and raises ``ValidationError`` a person can act on.
``preset_for`` is the one way to read a user's preset by id, so another user's id finds nothing.

May import: ``models``.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from providers.models import ConnectionProfile
from qtap_site.presets.models import Preset

STARTERS = Path(__file__).resolve().parent / "data" / "starter_presets.json"
MAX_TEXT = 20_000


@cache
def starter_presets() -> tuple[dict[str, str], ...]:
    """The starter presets, each ``{name, text}``."""
    rows = json.loads(STARTERS.read_text(encoding="utf-8"))
    return tuple({"name": str(row["name"]), "text": str(row["text"])} for row in rows)


def preset_for(*, user: Any, preset_id: Any) -> Preset | None:
    """The user's preset with that id (a string from a form or query is fine), or None."""
    text = str(preset_id or "")
    if not text.isdigit():
        return None
    return Preset.objects.filter(user=user, pk=int(text)).select_related("profile").first()


def _save(preset: Preset) -> Preset:
    preset.name = preset.name.strip()
    if len(preset.text) > MAX_TEXT:
        raise ValidationError({"text": f"A preset is at most {MAX_TEXT} characters."})
    if Preset.objects.filter(user=preset.user, name=preset.name).exclude(pk=preset.pk).exists():
        raise ValidationError({"name": f"You already have a preset named {preset.name!r}."})
    preset.full_clean(validate_constraints=False)  # the name is checked above, with words that say which
    preset.save()
    return preset


def preset_create(*, user: Any, name: str, text: str, profile: ConnectionProfile | None = None) -> Preset:
    return _save(Preset(user=user, name=name, text=text, profile=profile))


def preset_update(*, preset: Preset, name: str, text: str, profile: ConnectionProfile | None = None) -> Preset:
    preset.name, preset.text, preset.profile = name, text, profile
    return _save(preset)


def preset_delete(*, preset: Preset) -> None:
    preset.delete()


@transaction.atomic
def add_starter_presets(*, user: Any) -> int:
    """Add the starter presets the user does not have yet (by name); how many were added."""
    have = set(Preset.objects.filter(user=user).values_list("name", flat=True))
    new = [Preset(user=user, **row) for row in starter_presets() if row["name"] not in have]
    Preset.objects.bulk_create(new)
    return len(new)
