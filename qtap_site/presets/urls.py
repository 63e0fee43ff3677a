"""Routes of the presets app (mounted under ``/settings/``). Preset ids go in the query or the form, not the
path: ``services.preset_for`` scopes each one to the requesting user.

May import: ``views``.
"""

from django.urls import path

from qtap_site.presets import views

app_name = "presets"

urlpatterns = [
    path("presets/", views.preset_list, name="list"),
    path("presets/edit/", views.preset_edit, name="edit"),
    path("presets/delete/", views.preset_delete, name="delete"),
    path("presets/starters/", views.starters, name="starters"),
]
