"""The budgets app's configuration.

May import: nothing of the app (Django loads it first).
"""

from django.apps import AppConfig


class BudgetsConfig(AppConfig):
    name = "qtap_site.budgets"
    label = "budgets"
    default_auto_field = "django.db.models.BigAutoField"
