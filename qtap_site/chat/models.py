"""Chats, their messages (a tree: regenerated replies and edited messages are siblings), attachments
and generated images.

May import: nothing of the chat app (the first room).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import models


class Chat(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chats")
    title = models.CharField(max_length=200, blank=True)
    profile = models.ForeignKey(
        "providers.ConnectionProfile", on_delete=models.SET_NULL, null=True, blank=True, related_name="chats"
    )
    system_prompt = models.TextField(blank=True)
    # The tools on in this chat (tool names, or a tool plugin's name for all its tools); None: the
    # profile's ``tools`` parameter.
    tools = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]
        indexes = [models.Index(fields=["user", "-updated_at"])]

    def __str__(self) -> str:
        return self.title or f"Chat {self.pk}"


def attachment_upload_to(instance: Attachment, filename: str) -> str:
    # Content-addressed per owner: the client's filename never reaches the file system.
    return f"attachments/{instance.owner_id}/{instance.sha256[:2]}/{instance.sha256}"


class Attachment(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="attachments")
    sha256 = models.CharField(max_length=64)
    mime_type = models.CharField(max_length=100)
    size = models.PositiveBigIntegerField()
    filename = models.CharField(max_length=255)
    file = models.FileField(upload_to=attachment_upload_to, max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["owner", "sha256"], name="chat_attachment_owner_sha256")]

    def __str__(self) -> str:
        return f"{self.filename} ({self.mime_type}, {self.size} bytes)"

    @property
    def is_image(self) -> bool:
        return self.mime_type.startswith("image/")


class Message(models.Model):
    class Role(models.TextChoices):
        SYSTEM = "system"
        USER = "user"
        ASSISTANT = "assistant"

    class Status(models.TextChoices):
        COMPLETE = "complete"
        STREAMING = "streaming"
        CANCELLED = "cancelled"
        ERROR = "error"
        INTERRUPTED = "interrupted"

    chat = models.ForeignKey(Chat, on_delete=models.CASCADE, related_name="messages")
    parent = models.ForeignKey("self", on_delete=models.CASCADE, null=True, blank=True, related_name="children")
    role = models.CharField(max_length=16, choices=Role.choices)
    content = models.TextField(blank=True)
    reasoning = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.COMPLETE)
    plugin = models.CharField(max_length=100, blank=True)
    model = models.CharField(max_length=200, blank=True)
    input_tokens = models.PositiveIntegerField(null=True, blank=True)
    output_tokens = models.PositiveIntegerField(null=True, blank=True)
    cost = models.DecimalField(max_digits=14, decimal_places=8, null=True, blank=True)
    finish_reason = models.CharField(max_length=32, blank=True)
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.TextField(blank=True)
    ttft_ms = models.PositiveIntegerField(null=True, blank=True)
    cached_input_tokens = models.PositiveIntegerField(null=True, blank=True)
    cache_write_tokens = models.PositiveIntegerField(null=True, blank=True)
    reasoning_tokens = models.PositiveIntegerField(null=True, blank=True)
    # Opaque state the plugin attached to this reply (signed thinking, encrypted reasoning…): handed back
    # to the same plugin on the next turn, never shown, never sent in a frame.
    provider_state = models.JSONField(null=True, blank=True, editable=False)
    notes = models.CharField(max_length=300, blank=True)  # e.g. parameters the model did not take
    # A reply that called tools is several provider turns: for each turn that ended in calls, where its
    # text ends in ``content`` and its own opaque state, ``[{"offset": int, "provider_state": …}]``; the
    # last turn's state is ``provider_state``. Never shown, never sent in a frame.
    tool_rounds = models.JSONField(null=True, blank=True, editable=False)
    client_msg_id = models.CharField(max_length=100, blank=True)
    # When a tab last picked this message among its siblings (``branch.select``): the chat's newest message
    # id then, and the time. Under each message the visible child is the one picked or created last
    # (``services.visible_path``; ids, not creation times, which an import takes from its source), so
    # the choice survives a reload, is the same in every tab and process, and a new edit or
    # regeneration shows at once without a write here.
    selected_mark = models.PositiveBigIntegerField(null=True, blank=True)
    selected_at = models.DateTimeField(null=True, blank=True)
    attachments = models.ManyToManyField(Attachment, blank=True, related_name="messages")
    # The running-generation record other processes read: the last checkpointed `seq` and when
    # the owning process last wrote. A "streaming" row whose heartbeat went stale has no live owner.
    seq = models.PositiveIntegerField(default=0)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["chat", "created_at"]),
            models.Index(fields=["status", "heartbeat_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.role} message {self.pk} in chat {self.chat_id}"

    @classmethod
    def streaming_reply(cls, *, plugin: str, model: str, at: datetime, **place: Any) -> Message:
        """The unsaved row of a reply about to stream (``place``: its chat and parent, as objects or
        ids); its heartbeat starts now, so no other process takes it for stale."""
        return cls(
            role=cls.Role.ASSISTANT, status=cls.Status.STREAMING, plugin=plugin, model=model, heartbeat_at=at, **place
        )


class ToolCall(models.Model):
    """One call a reply made to a tool, its result, and how it went; ``round`` is the reply's turn."""

    class Status(models.TextChoices):
        AWAITING_APPROVAL = "awaiting_approval"
        RUNNING = "running"
        COMPLETE = "complete"
        ERROR = "error"
        DENIED = "denied"
        CANCELLED = "cancelled"

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="tool_calls")
    round = models.PositiveIntegerField(default=0)
    call_id = models.CharField(max_length=200)
    name = models.CharField(max_length=200)
    plugin = models.CharField(max_length=100, blank=True)  # the tool plugin that answered it
    arguments = models.JSONField(default=dict, blank=True)
    invalid_arguments = models.TextField(blank=True)  # the provider's argument text when it was not JSON
    result = models.TextField(blank=True)
    is_error = models.BooleanField(default=False)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.RUNNING)
    needs_approval = models.BooleanField(default=False)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["message", "round", "id"]
        constraints = [
            models.UniqueConstraint(fields=["message", "round", "call_id"], name="chat_toolcall_message_round_call")
        ]

    def __str__(self) -> str:
        return f"{self.name} call {self.call_id} of message {self.message_id}"


def generated_image_upload_to(instance: GeneratedImage, filename: str) -> str:
    return f"generated/{instance.chat_id}/{filename}"


class GeneratedImage(models.Model):
    chat = models.ForeignKey(Chat, on_delete=models.CASCADE, related_name="generated_images")
    prompt = models.TextField()
    revised_prompt = models.TextField(blank=True)
    plugin = models.CharField(max_length=100)
    model = models.CharField(max_length=200, blank=True)
    file = models.FileField(upload_to=generated_image_upload_to, max_length=255)
    mime_type = models.CharField(max_length=100, default="image/png")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"Image {self.pk} in chat {self.chat_id}"
