"""Uploads and owner-only file serving. Every lookup is scoped to the signed-in user: anything
else answers 404, whether it exists or not.

May import: ``attachments``, ``models``; of the providers app, ``models``.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.db.models.fields.files import FieldFile
from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_POST

from providers.models import ConnectionProfile
from qtap_site.chat.attachments import AttachmentError, attachment_create, max_upload_bytes
from qtap_site.chat.models import Attachment, Chat, GeneratedImage

# Multipart framing around the file: a request this much over the limit cannot be a legal upload.
_MULTIPART_OVERHEAD = 64 * 1024


def _error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message}}, status=status)


class SizeLimitedUpload(FileUploadHandler):
    """Stops parsing a multipart body as soon as a file passes the limit, instead of spooling it."""

    def __init__(self, limit: int, request: HttpRequest | None = None) -> None:
        super().__init__(request)
        self.limit = limit
        self.exceeded = False

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None:
        if start + len(raw_data) > self.limit:
            self.exceeded = True
            raise StopUpload(connection_reset=True)
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None


# CSRF is checked inside, after the size-limiting handler is installed: the CSRF middleware would
# otherwise parse the whole multipart body (reading request.POST) before this view runs.
@csrf_exempt
@login_required
@require_POST
def attachment_upload(request: HttpRequest, chat_id: int) -> HttpResponse:
    chat = get_object_or_404(Chat.objects.select_related("profile"), pk=chat_id, user=request.user)
    limit = max_upload_bytes()
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit + _MULTIPART_OVERHEAD:
        # Refused before the body is parsed.
        return _error(413, "too_large", f"The upload is larger than the {limit} bytes allowed.")
    guard = SizeLimitedUpload(limit, request)
    request.upload_handlers = [guard, *request.upload_handlers]
    return _store_upload(request, chat, guard, limit)


def _upload_profile(request: HttpRequest, chat: Chat) -> ConnectionProfile | None:
    """The profile the file is for: the one the page's picker names (a send may switch the chat to
    it), else the chat's, else the user's default, as a send would choose; only the chat owner's, who is
    the requester (the chat was fetched through them)."""
    chosen = request.POST.get("profile_id", "")
    if chosen.isdigit():
        return get_object_or_404(ConnectionProfile, pk=int(chosen), user_id=chat.user_id)
    if chat.profile is not None:
        return chat.profile
    return ConnectionProfile.objects.filter(user_id=chat.user_id, is_default=True).order_by("pk").first()


@csrf_protect
def _store_upload(request: HttpRequest, chat: Chat, guard: SizeLimitedUpload, limit: int) -> HttpResponse:
    upload = request.FILES.get("file")
    if guard.exceeded or (upload is not None and upload.size is not None and upload.size > limit):
        return _error(413, "too_large", f"The file is larger than the {limit} bytes allowed.")
    if upload is None:
        return _error(400, "bad_request", "Send the file in the multipart field 'file'.")
    data = upload.read()
    profile = _upload_profile(request, chat)
    try:
        attachment = attachment_create(owner=request.user, filename=upload.name or "upload", data=data, profile=profile)
    except AttachmentError as exc:
        return _error(exc.status, exc.code, exc.message)
    return JsonResponse(
        {
            "id": attachment.pk,
            "filename": attachment.filename,
            "mime_type": attachment.mime_type,
            "size": attachment.size,
        },
        status=201,
    )


def _serve(file_field: FieldFile, mime_type: str, filename: str) -> FileResponse:
    inline = mime_type.startswith("image/") or mime_type == "application/pdf"
    response = FileResponse(file_field.open("rb"), content_type=mime_type, as_attachment=not inline, filename=filename)
    response["X-Content-Type-Options"] = "nosniff"
    # Never let an uploaded or generated file run anything, even if a browser is tricked into rendering it.
    response["Content-Security-Policy"] = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; sandbox"
    return response


@login_required
@require_GET
def attachment_file(request: HttpRequest, attachment_id: int) -> HttpResponseBase:
    attachment = get_object_or_404(Attachment, pk=attachment_id, owner=request.user)
    return _serve(attachment.file, attachment.mime_type, attachment.filename)


@login_required
@require_GET
def generated_image_file(request: HttpRequest, image_id: int) -> HttpResponseBase:
    image = get_object_or_404(GeneratedImage, pk=image_id, chat__user=request.user)
    extension = image.file.name.rsplit(".", 1)[-1] if "." in image.file.name else "bin"
    return _serve(image.file, image.mime_type, f"image-{image.pk}.{extension}")
