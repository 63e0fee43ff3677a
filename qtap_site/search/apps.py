"""The search app's configuration.

May import: nothing of the app (Django loads it first).
"""

from django.apps import AppConfig


class SearchConfig(AppConfig):
    name = "qtap_site.search"
    label = "search"
    default_auto_field = "django.db.models.BigAutoField"
