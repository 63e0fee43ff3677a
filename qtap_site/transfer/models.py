"""Where an imported chat came from: one row per chat an import created, so that importing the same file
again skips what is already here.

May import: nothing of the app (the first room).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ImportedChat(models.Model):
    """A chat made by an import, and its identity in the file it came from (``source`` is ``qtap``,
    ``chatgpt`` or ``claude``; ``external_id`` the conversation's id there)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="imported_chats")
    source = models.CharField(max_length=16)
    external_id = models.CharField(max_length=200)
    # Deleting the chat deletes this row too: a chat deleted on purpose can be imported again.
    chat = models.OneToOneField("chat.Chat", on_delete=models.CASCADE, related_name="imported_from")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "source", "external_id"], name="transfer_imported_chat_identity")
        ]

    def __str__(self) -> str:
        return f"{self.source} conversation {self.external_id} → chat {self.chat_id}"
