"""A preset: a named system prompt in a user's library, with the connection profile it goes with (optional).

May import: ``providers.models`` (the profile a preset may name).
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from providers.models import ConnectionProfile


class Preset(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="presets")
    name = models.CharField(max_length=100)
    text = models.TextField()
    # Deleting the profile keeps the preset: its text is the part worth keeping.
    profile = models.ForeignKey(ConnectionProfile, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("name", "id")
        constraints = [models.UniqueConstraint(fields=("user", "name"), name="preset_unique_name_per_user")]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.profile_id is not None and self.profile is not None and self.profile.user_id != self.user_id:
            raise ValidationError({"profile": "That connection profile does not exist."})
