"""The chat models in the admin (read-mostly: a message's figures, never a provider's state).

May import: ``models``.
"""

from django.contrib import admin

from qtap_site.chat.models import Attachment, Chat, GeneratedImage, Message


class MessageInline(admin.TabularInline):
    model = Message
    extra = 0
    fields = ("role", "status", "plugin", "model", "input_tokens", "output_tokens", "cost", "created_at")
    readonly_fields = fields
    show_change_link = True


@admin.register(Chat)
class ChatAdmin(admin.ModelAdmin):
    list_display = ("__str__", "user", "profile", "updated_at")
    list_filter = ("created_at",)
    search_fields = ("title", "user__username")
    raw_id_fields = ("user", "profile")
    inlines = [MessageInline]


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ("id", "chat", "role", "status", "plugin", "model", "output_tokens", "cost", "ttft_ms", "created_at")
    list_filter = ("role", "status", "plugin")
    raw_id_fields = ("chat", "parent", "attachments")
    readonly_fields = (
        "seq",
        "heartbeat_at",
        "cached_input_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
        "created_at",
        "updated_at",
    )
    # The plugin's opaque state (signed thinking, encrypted reasoning) is for the plugin alone.
    exclude = ("provider_state",)


@admin.register(Attachment)
class AttachmentAdmin(admin.ModelAdmin):
    list_display = ("filename", "owner", "mime_type", "size", "created_at")
    list_filter = ("mime_type",)
    raw_id_fields = ("owner",)
    readonly_fields = ("sha256", "mime_type", "size")


@admin.register(GeneratedImage)
class GeneratedImageAdmin(admin.ModelAdmin):
    list_display = ("id", "chat", "plugin", "model", "created_at")
    raw_id_fields = ("chat",)
