"""Routes of the budgets app: the usage pages.

May import: ``views``.
"""

from django.urls import path

from qtap_site.budgets import views

app_name = "budgets"

urlpatterns = [
    path("usage/", views.usage, name="usage"),
    path("usage/all/", views.usage_all, name="usage_all"),
]
