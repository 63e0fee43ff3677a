"""Pages and downloads of export and import: one chat as Markdown or JSON, every chat as one streamed
archive, the import form and its answer (JSON for JSON clients, an HTML page or htmx partial otherwise),
and the progress of an import the page started in the background.

Thin: the chat is fetched through the requesting user (another user's chat answers 404) and the work is
``exporting``'s, ``markdown``'s and ``importing``'s.

May import: ``exporting``, ``importing``, ``jobs``, ``markdown``, ``models``, ``records``,
``qtap_site.chat.models``.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_http_methods

from qtap_site.chat.models import Chat
from qtap_site.transfer import exporting, importing, jobs, markdown
from qtap_site.transfer.models import ImportJob
from qtap_site.transfer.records import ImportProblem

PAGE = "transfer/transfer.html"
LINKS = 200  # chats an import's result links to; the chat list has them all


class AuthedRequest(HttpRequest):
    """What these views see: a signed-in user (``login_required``)."""

    user: User


def _download(content: Any, content_type: str, filename: str, *, streamed: bool = False) -> HttpResponse:
    response_class = StreamingHttpResponse if streamed else HttpResponse
    response = response_class(content, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response  # type: ignore[return-value]


def _name(chat: Chat) -> str:
    return slugify(chat.title)[:60] or f"chat-{chat.pk}"


def _with_bytes(request: AuthedRequest) -> bool:
    """Attachments' bytes go in the archive unless ``?attachments=metadata`` asks for a smaller file."""
    return request.GET.get("attachments") != "metadata"


@login_required
@require_GET
def export_markdown(request: AuthedRequest, chat_id: int) -> HttpResponse:
    chat = get_object_or_404(Chat, pk=chat_id, user=request.user)
    return _download(markdown.chat_markdown(chat), "text/markdown; charset=utf-8", f"{_name(chat)}.md")


@login_required
@require_GET
def export_json(request: AuthedRequest, chat_id: int) -> HttpResponse:
    chat = get_object_or_404(Chat, pk=chat_id, user=request.user)
    body = b"".join(exporting.archive_chunks(user=request.user, chat_id=chat.pk, with_bytes=_with_bytes(request)))
    return _download(body, "application/json", f"{_name(chat)}.qtap.json")


@login_required
@require_GET
def export_all(request: AuthedRequest) -> HttpResponse:
    chunks = exporting.archive_chunks(user=request.user, with_bytes=_with_bytes(request))
    # An ASGI server would read a sync iterator to its end before the first byte went out.
    content = exporting.streamed_async(chunks) if isinstance(request, ASGIRequest) else chunks
    filename = f"qtap-{slugify(request.user.get_username()) or 'export'}-{timezone.now():%Y%m%d-%H%M}.json"
    return _download(content, "application/json", filename, streamed=True)


@login_required
@require_GET
def page(request: AuthedRequest) -> HttpResponse:
    return render(request, PAGE, {"chat_count": Chat.objects.filter(user=request.user).count()})


def _wants_json(request: AuthedRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def _wants_progress(request: AuthedRequest) -> bool:
    """The page's opt-in: answer at once with a job to poll instead of waiting for the import."""
    return request.POST.get("progress") == "1" or request.headers.get("X-Qtap-Import-Progress") == "1"


@login_required
@require_http_methods(["GET", "POST"])
def import_file(request: AuthedRequest) -> HttpResponse:
    """POST imports ``file``; GET only shows the form (a GET never imports).

    Without the progress opt-in the answer waits for the import: ``{imported, skipped, chats}`` or
    ``{error, detail}`` for JSON clients (SPEC §5b), the page otherwise. With it (the page's script), the
    answer is 202 with the job's status and its ``status_url`` to poll."""
    if request.method == "GET":
        return page(request)
    upload = request.FILES.get("file")
    try:
        if upload is None:
            raise ImportProblem("no_file", "the form has no file in its 'file' field")
        if _wants_progress(request):
            job = jobs.start(user=request.user, upload=upload)
            answer = jobs.status(job) | {"status_url": reverse("transfer:import_status", args=[job.pk])}
            return JsonResponse(answer, status=202)
        job = jobs.run_now(user=request.user, upload=upload)
    except jobs.Busy as busy:
        if _wants_json(request) or _wants_progress(request):
            return JsonResponse({"error": "busy", "detail": busy.detail}, status=409)
        return _answer(request, {"problem": ImportProblem("busy", busy.detail)}, status=409)
    except ImportProblem as problem:
        return _refused(request, problem, 400)
    if job.status == job.Status.FAILED:
        return _refused(request, ImportProblem(job.error, job.detail), 500 if job.error == "internal" else 400)
    if _wants_json(request):
        return JsonResponse({"imported": job.imported, "skipped": job.skipped, "chats": job.chats})
    chats = Chat.objects.filter(user=request.user, pk__in=job.chats).only("id", "title").order_by("id")
    return _answer(request, {"result": job, "source": importing.SOURCES[job.source], "chats": chats})


def _refused(request: AuthedRequest, problem: ImportProblem, status: int) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse({"error": problem.error, "detail": problem.detail}, status=status)
    return _answer(request, {"problem": problem}, status=status)


@login_required
@require_GET
def import_status(request: AuthedRequest, import_id: uuid.UUID) -> HttpResponse:
    """How far the user's import ``import_id`` has got (JSON); another user's answers 404."""
    jobs.expire_stale(user=request.user)
    job = get_object_or_404(ImportJob, pk=import_id, user=request.user)
    answer = jobs.status(job)
    if answer.get("chats"):
        chats = Chat.objects.filter(user=request.user, pk__in=answer["chats"][:LINKS]).order_by("id")
        answer["links"] = [
            {"id": c.pk, "title": c.title, "url": reverse("chat:detail", args=[c.pk])} for c in chats.only("title")
        ]
    response = JsonResponse(answer)
    response["Cache-Control"] = "no-store"
    return response


def _answer(request: AuthedRequest, context: dict[str, Any], status: int = 200) -> HttpResponse:
    context["chat_count"] = Chat.objects.filter(user=request.user).count()
    template = f"{PAGE}#import-result" if getattr(request, "htmx", False) else PAGE
    return render(request, template, context, status=status)
