"""The search app's configuration: ``ready()`` registers the system checks, nothing else.

May import (inside ``ready()``, once the models are loaded): ``checks``.
"""

from django.apps import AppConfig


class SearchConfig(AppConfig):
    name = "qtap_site.search"
    label = "search"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from qtap_site.search import checks  # noqa: F401
