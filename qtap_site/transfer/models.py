"""Where an imported chat came from: one row per chat an import created, so that importing the same file
again skips what is already here; and each import's progress and outcome (``ImportJob``).

May import: nothing of the app (the first room).
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


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


class ImportJob(models.Model):
    """One import of one file, and how far it has got: the page polls it (``GET /import/<id>/``) while a
    background thread reads and saves the file. Its outcome stays here once it is finished.

    At most one unfinished import per user (``transfer_one_running_import_per_user``): a second one is
    refused while the first runs, so two imports never race for the same chats.
    """

    class Status(models.TextChoices):
        QUEUED = "queued"  # stored, not started yet
        READING = "reading"  # the file is being read and parsed as JSON
        PARSING = "parsing"  # conversations are being checked and read: ``done`` of ``total``
        SAVING = "saving"  # rows built, then written in one short transaction: ``done`` of ``total``
        DONE = "done"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="import_jobs")
    filename = models.CharField(max_length=255)
    size = models.PositiveBigIntegerField(default=0)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    done = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(null=True, blank=True)
    source = models.CharField(max_length=16, blank=True)
    imported = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    messages = models.PositiveIntegerField(default=0)
    chats = models.JSONField(default=list, blank=True)
    error = models.CharField(max_length=32, blank=True)
    detail = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Written with every progress report: an unfinished job whose heartbeat stopped lost its process.
    heartbeat_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user"],
                condition=models.Q(finished_at__isnull=True),
                name="transfer_one_running_import_per_user",
            )
        ]

    def __str__(self) -> str:
        return f"import of {self.filename} ({self.status})"

    @property
    def finished(self) -> bool:
        return self.status in (self.Status.DONE, self.Status.FAILED)
