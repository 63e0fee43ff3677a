"""Routes of the transfer app.

May import: ``views``.
"""

from django.urls import path

from qtap_site.transfer import views

app_name = "transfer"

urlpatterns = [
    path("chats/<int:chat_id>/export.md", views.export_markdown, name="export_markdown"),
    path("chats/<int:chat_id>/export.json", views.export_json, name="export_json"),
    path("export/", views.export_all, name="export_all"),
    path("import/", views.import_file, name="import"),
    path("import/<uuid:import_id>/", views.import_status, name="import_status"),
    path("transfer/", views.page, name="page"),
]
