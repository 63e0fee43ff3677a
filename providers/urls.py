"""The settings pages' URLs (mounted under ``/settings/``).

May import: ``providers.tool_views``, ``providers.views``.
"""

from django.urls import path
from django.views.generic import RedirectView

from providers import tool_views, views

app_name = "providers"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="providers:keys"), name="index"),
    path("keys/", views.keys, name="keys"),
    path("keys/check/", views.key_check, name="key_check"),
    path("keys/<int:key_id>/test/", views.key_test, name="key_test"),
    path("keys/<int:key_id>/toggle/", views.key_toggle, name="key_toggle"),
    path("keys/<int:key_id>/delete/", views.key_delete, name="key_delete"),
    path("profiles/", views.profiles, name="profiles"),
    path("profiles/new/", views.profile_new, name="profile_new"),
    path("profiles/<int:profile_id>/", views.profile_edit, name="profile_edit"),
    path("image-profiles/", views.image_profiles, name="image_profiles"),
    path("image-profiles/new/", views.image_profile_new, name="image_profile_new"),
    path("image-profiles/<int:profile_id>/", views.image_profile_edit, name="image_profile_edit"),
    path("<str:kind>-profiles/<int:profile_id>/delete/", views.profile_delete, name="profile_delete"),
    path("<str:kind>-profiles/<int:profile_id>/default/", views.profile_make_default, name="profile_default"),
    path("<str:kind>-profiles/<int:profile_id>/test/", views.profile_test, name="profile_test"),
    path("<str:kind>-profiles/fields/", views.provider_fields, name="provider_fields"),
    path("models/", views.model_options, name="models"),
    path("tools/", tool_views.tools, name="tools"),
    path("tools/<str:plugin>/", tool_views.tool_settings_save, name="tool_settings_save"),
    path("tools/<str:plugin>/servers/", tool_views.tool_server_save, name="tool_server_save"),
    path("tools/<str:plugin>/servers/<str:server>/delete/", tool_views.tool_server_delete, name="tool_server_delete"),
    path("tools/<str:plugin>/servers/<str:server>/test/", tool_views.tool_server_test, name="tool_server_test"),
    path("plugins/", views.plugin_list, name="plugins"),
    path("plugins/<str:name>/toggle/", views.plugin_toggle, name="plugin_toggle"),
    path("plugins/<str:name>/icon.svg", views.plugin_icon, name="plugin_icon"),
]
