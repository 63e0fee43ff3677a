"""The preset form: it validates what a person typed; ``services`` writes.

May import: ``models`` (through ``providers.models`` for the profile choices).
"""

from __future__ import annotations

from typing import Any, cast

from django import forms

from providers.models import ConnectionProfile
from qtap_site.presets.services import MAX_TEXT


class ProfileChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return str(obj.name)  # the name the person gave it, as the chat page's picker shows it


class PresetForm(forms.Form):
    name = forms.CharField(max_length=100)
    text = forms.CharField(
        max_length=MAX_TEXT, widget=forms.Textarea(attrs={"rows": 6}), help_text="The chat's system prompt."
    )
    profile = ProfileChoiceField(
        queryset=ConnectionProfile.objects.none(),
        required=False,
        empty_label="— the chat's usual profile —",
        help_text="A chat started from this preset uses this connection profile.",
    )

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Only the user's own profiles can be chosen: another user's id is "not one of the choices".
        field = cast(forms.ModelChoiceField, self.fields["profile"])
        field.queryset = ConnectionProfile.objects.filter(user=user).order_by("-is_default", "name")
