"""Upload and file routes of the chat app.

May import: ``api_views``.
"""

from django.urls import path

from qtap_site.chat import api_views

app_name = "chat_api"

urlpatterns = [
    path("chats/<int:chat_id>/attachments/", api_views.attachment_upload, name="attachment_upload"),
    path("attachments/<int:attachment_id>/", api_views.attachment_file, name="attachment_file"),
    path("images/<int:image_id>/", api_views.generated_image_file, name="generated_image_file"),
]
