"""The chat app's configuration: no ``ready()`` work.

May import: nothing of the chat app.
"""

from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "qtap_site.chat"
    label = "chat"
    verbose_name = "Chat"
    default_auto_field = "django.db.models.BigAutoField"
