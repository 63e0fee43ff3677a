"""Presets in the admin: listed and searched by name and owner.

May import: ``models``.
"""

from django.contrib import admin

from qtap_site.presets.models import Preset


@admin.register(Preset)
class PresetAdmin(admin.ModelAdmin):
    list_display = ("name", "user", "profile", "updated_at")
    list_select_related = ("user", "profile")
    search_fields = ("name", "user__username")
