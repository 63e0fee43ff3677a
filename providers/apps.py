"""The providers app: ``ready()`` registers the system checks and loads the plugins, nothing else.

May import (inside ``ready()``, once the models are loaded): ``providers.checks``, ``providers.loader``,
``providers.registry``.
"""

from django.apps import AppConfig
from django.conf import settings


class ProvidersConfig(AppConfig):
    name = "providers"
    verbose_name = "Providers"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Thin on purpose: register checks and load plugins. No database, no network.
        from providers import checks  # noqa: F401
        from providers.loader import load_plugins
        from providers.registry import registry

        load_plugins(registry, settings.QTAP_PLUGINS_DIR)
