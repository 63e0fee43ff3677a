"""The transfer app's configuration.

May import: nothing of the app (Django loads it first).
"""

from django.apps import AppConfig


class TransferConfig(AppConfig):
    name = "qtap_site.transfer"
    label = "transfer"
    default_auto_field = "django.db.models.BigAutoField"
