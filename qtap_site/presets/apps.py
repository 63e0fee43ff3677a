"""The presets app's configuration.

May import: nothing of the app (Django loads it first).
"""

from django.apps import AppConfig


class PresetsConfig(AppConfig):
    name = "qtap_site.presets"
    label = "presets"
    default_auto_field = "django.db.models.BigAutoField"
