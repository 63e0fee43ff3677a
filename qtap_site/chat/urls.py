"""Page routes of the chat app.

May import: ``views``.
"""

from django.urls import path

from qtap_site.chat import views

app_name = "chat"

urlpatterns = [
    path("", views.index, name="index"),
    path("chats/new/", views.new, name="new"),
    path("chats/<int:chat_id>/", views.detail, name="detail"),
    path("chats/<int:chat_id>/history/", views.history, name="history"),
    path("chats/<int:chat_id>/rename/", views.rename, name="rename"),
    path("chats/<int:chat_id>/delete/", views.delete, name="delete"),
    path("chats/<int:chat_id>/tools/", views.tools, name="tools"),
    path("chats/<int:chat_id>/system-prompt/", views.system_prompt, name="system_prompt"),
]
