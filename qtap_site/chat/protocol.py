"""The websocket protocol of a chat (SPEC §5), both ways: the client frames (validated with pydantic),
the server frames (built here and nowhere else; the tool frames in ``tool_frames``), the error codes,
and the ``ChatServiceError`` family that refuses a request. Whether an error is worth retrying is said
once, by its exception class: ``RETRYABLE`` is built from those classes, for live frames and saved ones.

A client frame that fails here never reaches a service (the consumer answers ``error``, stays open).
A value the database could not take is refused here, naming its field, not inside a shared send
batch: text must be whole Unicode (JSON can spell a lone surrogate, ``"\\ud800"``) and an id fit 64 bits.

A message travels in the same shape everywhere (``message_dict``: ``message.created``, ``chat.state``,
the page), with ``message_html``, the server's drawing of it (``rendering``); ``generation.finished``
and ``generation.error`` carry the reply's ``message_html`` as it ended, so a tab never draws one itself.

May import: ``branch_frames``, ``models``, ``rendering``, ``tool_frames``; ``providers.errors`` for the provider
error classes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Annotated, Any, Literal

from django.urls import reverse
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError

from providers.errors import ProviderError, QtapProviderError, UnsupportedAttachmentError
from qtap_site.chat import branch_frames, rendering
from qtap_site.chat.models import Attachment, Message
from qtap_site.chat.tool_frames import ToolApprove, calls_of

Frame = dict[str, Any]

# ---- error codes ---------------------------------------------------------------------------------

# ``error`` frames: a client frame refused; the socket stays open.
BAD_REQUEST = "bad_request"
TOO_LARGE = "too_large"
NOT_FOUND = "not_found"
FORBIDDEN = "forbidden"
BUSY = "busy"
RATE_LIMITED = "rate_limited"
INTERNAL = "internal"
# ``generation.error``: a ProviderError's own code (providers.errors), a refusal of
# ``providers.calls.resolve_call`` (missing_api_key, provider_unavailable, base_url_refused, …), or one of these.
NO_PROFILE = "no_profile"
BUDGET_EXCEEDED = "budget_exceeded"  # qtap_site.budgets; no class raises it, so it is not retryable (is_retryable)
UNSUPPORTED_ATTACHMENT = "unsupported_attachment"
PROVIDER_UNAVAILABLE = "provider_unavailable"


class ChatServiceError(Exception):
    """A refused request; ``code`` is the protocol's error code, ``retryable`` whether the same request
    may succeed later."""

    code = BAD_REQUEST
    retryable = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class FrameError(ChatServiceError):
    """A bad client frame (``bad_request``, ``too_large``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code

    def frame(self) -> Frame:
        return error(self.code, self.message)


class NotFound(ChatServiceError):
    code = NOT_FOUND


class Forbidden(ChatServiceError):
    code = FORBIDDEN


class Busy(ChatServiceError):
    code = BUSY
    retryable = True

    def __init__(self, message: str = "") -> None:
        super().__init__(message or "A reply is already being generated in this chat. Stop it or wait for it to end.")


class RateLimited(ChatServiceError):
    code = RATE_LIMITED
    retryable = True

    @classmethod
    def at(cls, limit: int) -> RateLimited:
        return cls(f"You already have {limit} replies being generated; wait for one to finish.")


class InternalError(ChatServiceError):
    """The server failed, not the request: the same request may well work next time."""

    code = INTERNAL
    retryable = True


def _family(root: type) -> Iterator[type]:
    yield root
    for sub in root.__subclasses__():
        yield from _family(sub)


def _retryable_by_code() -> Mapping[str, bool]:
    """Every error class of ``providers.errors`` and of this module (not a plugin's own subclasses)."""
    table: dict[str, bool] = {}
    for cls in [*_family(QtapProviderError), *_family(ChatServiceError)]:
        code = getattr(cls, "code", None)
        if cls.__module__ not in (QtapProviderError.__module__, __name__) or not isinstance(code, str):
            continue
        flag = bool(getattr(cls, "default_retryable", getattr(cls, "retryable", False)))
        if table.setdefault(code, flag) != flag:
            raise TypeError(f"error classes disagree whether {code!r} is retryable")
    return MappingProxyType(table)


# Error code → worth retrying, from the exception classes (a message saved with an error code answers
# from here, a live error from its exception, which is the same class).
RETRYABLE: Mapping[str, bool] = _retryable_by_code()


def is_retryable(code: str) -> bool:
    return RETRYABLE.get(code, False)


def failure(exc: BaseException) -> tuple[str, str, bool]:
    """The ``generation.error`` (code, message, retryable) of a generation that ended with ``exc``."""
    if isinstance(exc, ProviderError):
        return exc.code, exc.message, exc.retryable
    if isinstance(exc, UnsupportedAttachmentError):
        return UNSUPPORTED_ATTACHMENT, str(exc), is_retryable(UNSUPPORTED_ATTACHMENT)
    if isinstance(exc, QtapProviderError):
        return PROVIDER_UNAVAILABLE, str(exc), is_retryable(PROVIDER_UNAVAILABLE)
    if isinstance(exc, ChatServiceError):
        return exc.code, exc.message, exc.retryable
    return INTERNAL, "The reply failed because of an internal error.", InternalError.retryable


# ---- client → server -----------------------------------------------------------------------------

MAX_ATTACHMENTS = 20
MAX_ID = 2**63 - 1  # the largest key of a 64-bit integer column (SQLite INTEGER, PostgreSQL bigint)

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")  # json.loads joins a valid pair into one character


def _whole_unicode(value: Any) -> Any:
    if isinstance(value, str) and (found := _LONE_SURROGATE.search(value)):
        raise ValueError(
            f"contains a lone surrogate (\\u{ord(found.group()):04x} at character {found.start()}); "
            "text must be valid Unicode"
        )
    return value


# Placed after a length constraint, so that check keeps its own "at most N characters" message.
WholeUnicode = BeforeValidator(_whole_unicode)
Text = Annotated[str, WholeUnicode]
Id = Annotated[int, Field(ge=1, le=MAX_ID)]


class _Frame(BaseModel):
    # Unknown keys are ignored so that a newer client still talks to an older server.
    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)


class MessageSend(_Frame):
    type: Literal["message.send"]
    content: Text
    attachments: list[Id] = Field(default_factory=list, max_length=MAX_ATTACHMENTS)
    profile_id: Id | None = None
    client_msg_id: Annotated[str, Field(max_length=100), WholeUnicode] | None = None


class GenerationStop(_Frame):
    type: Literal["generation.stop"]
    message_id: Id | None = None


class MessageRegenerate(_Frame):
    type: Literal["message.regenerate"]
    message_id: Id
    profile_id: Id | None = None


class ImageGenerate(_Frame):
    type: Literal["image.generate"]
    prompt: Annotated[str, Field(min_length=1, max_length=32_000), WholeUnicode]
    image_profile_id: Id | None = None
    size: Annotated[str, Field(max_length=32), WholeUnicode] | None = None
    aspect_ratio: Annotated[str, Field(max_length=16), WholeUnicode] | None = None
    quality: Annotated[str, Field(max_length=32), WholeUnicode] | None = None
    style: Annotated[str, Field(max_length=32), WholeUnicode] | None = None
    n: Annotated[int, Field(ge=1, le=4)] | None = None


class Ping(_Frame):
    type: Literal["ping"]


Frames = MessageSend | GenerationStop | MessageRegenerate | ImageGenerate | ToolApprove | Ping
ClientFrame = Annotated[Frames | branch_frames.BranchFrame, Field(discriminator="type")]
_adapter: TypeAdapter[Any] = TypeAdapter(ClientFrame)
_TYPES = ("message.send", "generation.stop", "message.regenerate", "image.generate", "tool.approve", "ping")
FRAME_TYPES = (*_TYPES, *branch_frames.TYPES)


def parse_frame(text: str | None, *, max_bytes: int) -> Any:
    """Parse one text frame into its model, raising ``FrameError`` with the protocol's code."""
    if text is None:
        raise FrameError(BAD_REQUEST, "Frames must be JSON text, not binary.")
    # Measured on the raw text, before parsing: a huge frame costs nothing to refuse.
    if len(text) > max_bytes or len(text.encode("utf-8")) > max_bytes:
        raise FrameError(TOO_LARGE, f"Frame is larger than {max_bytes} bytes.")
    try:
        data = json.loads(text)
    except ValueError:
        raise FrameError(BAD_REQUEST, "Frame is not valid JSON.") from None
    except RecursionError:
        raise FrameError(BAD_REQUEST, "Frame is nested too deeply to parse.") from None
    if not isinstance(data, dict):
        raise FrameError(BAD_REQUEST, "Frame must be a JSON object with a 'type'.")
    kind = data.get("type")
    if not isinstance(kind, str):
        raise FrameError(BAD_REQUEST, "Frame has no 'type'.")
    if kind not in FRAME_TYPES:
        raise FrameError(BAD_REQUEST, f"Unknown frame type {kind[:50]!r}. Known: {', '.join(FRAME_TYPES)}.")
    try:
        return _adapter.validate_python(data)
    except ValidationError as exc:
        raise FrameError(BAD_REQUEST, _describe(exc)) from None
    except RecursionError:
        raise FrameError(BAD_REQUEST, "Frame is nested too deeply to validate.") from None


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors(include_url=False, include_input=False)[:5]:
        location = ".".join(str(part) for part in error["loc"][1:]) or "frame"
        problems.append(f"{location}: {error['msg']}")
    return "Invalid frame: " + "; ".join(problems)


# ---- server → client -----------------------------------------------------------------------------


def attachment_dict(attachment: Attachment) -> dict[str, Any]:
    """An attachment in frames and on the page: what the upload endpoint answers, and its file's URL."""
    return {
        "id": attachment.pk,
        "filename": attachment.filename,
        "mime_type": attachment.mime_type,
        "size": attachment.size,
        "url": reverse("chat_api:attachment_file", args=[attachment.pk]),
    }


def message_dict(
    message: Message, attachments: list[Attachment] | None = None, *, drawn: bool = True, siblings: Any = None
) -> dict[str, Any]:
    """A message as frames carry it; ``html`` is its sanitised text (replies), ``message_html`` all of it
    (``drawn=False`` leaves the drawing to ``message_created``: a send batch does not wait for it);
    ``siblings``, its siblings' ids and its own (``branches.siblings_of``), only when it has some."""
    if attachments is None:
        attachments = list(message.attachments.all())
    shape = {
        "id": message.pk,
        "parent_id": message.parent_id,
        "role": message.role,
        "content": message.content,
        "reasoning": message.reasoning,
        "html": rendering.markdown_of_history(message.content) if message.role == Message.Role.ASSISTANT else "",
        "status": message.status,
        "plugin": message.plugin,
        "model": message.model,
        "input_tokens": message.input_tokens,
        "output_tokens": message.output_tokens,
        "cached_input_tokens": message.cached_input_tokens,
        "reasoning_tokens": message.reasoning_tokens,
        "notes": message.notes,
        "cost": float(message.cost) if message.cost is not None else None,
        "finish_reason": message.finish_reason,
        "error_code": message.error_code,
        "error_message": message.error_message,
        "ttft_ms": message.ttft_ms,
        "attachments": [attachment_dict(a) for a in attachments],
        "tool_calls": calls_of(message) if message.tool_rounds else [],
        "created_at": message.created_at.isoformat(),
        "client_msg_id": message.client_msg_id or None,
    } | ({"siblings": list(siblings)} if siblings else {})
    return _drawn(shape) if drawn else shape


def _drawn(shape: dict[str, Any]) -> dict[str, Any]:
    shape["message_html"] = rendering.message_html(shape, retryable=is_retryable(shape["error_code"]))
    return shape


def ended_message(created: Mapping[str, Any], *, html: str, retryable: bool, **saved: Any) -> dict[str, Any]:
    """A reply's ``message_dict`` once it ended: its shape when it was created, with what its final save
    wrote (``saved``: the row's fields) and its text as ``html``, drawn again."""
    shape = {**created, **{name: value for name, value in saved.items() if name in created}, "html": html}
    shape["cost"] = float(shape["cost"]) if shape["cost"] is not None else None
    shape["message_html"] = rendering.message_html(shape, retryable=retryable)
    return shape


def error(code: str, message: str) -> Frame:
    return {"type": "error", "code": code, "message": message}


def pong() -> Frame:
    return {"type": "pong"}


def chat_state(state: Mapping[str, Any]) -> Frame:
    """``state``: ``{chat, messages_tail, generation}`` (``services.chat_state``)."""
    return {"type": "chat.state", **state}


def message_created(message: dict[str, Any]) -> Frame:
    return {"type": "message.created", "message": message if "message_html" in message else _drawn(message)}


def generation_started(*, message_id: int, profile_id: int | None, plugin: str, model: str) -> Frame:
    started = {"message_id": message_id, "profile_id": profile_id, "plugin": plugin, "model": model}
    return {"type": "generation.started", **started}


def generation_delta(message_id: int, seq: int, text: str, *, reasoning: bool = False) -> Frame:
    kind = "generation.reasoning" if reasoning else "generation.delta"
    return {"type": kind, "message_id": message_id, "seq": seq, "text": text}


def generation_finished(
    *,
    message_id: int,
    finish_reason: str,
    input_tokens: int | None,
    output_tokens: int | None,
    cost: float | None,
    ttft_ms: int | None,
    html: str,
    message_html: str,
    cached_input_tokens: int | None = None,
    reasoning_tokens: int | None = None,
) -> Frame:
    """``html``: the reply's text as sanitised HTML (rendering.render_markdown); ``message_html``: the whole
    message as it ended (``ended_message``). The provider's opaque state never goes into a frame."""
    usage = {"input_tokens": input_tokens, "output_tokens": output_tokens}
    # Counts a provider reports only sometimes are sent only when it did.
    extra = {"cached_input_tokens": cached_input_tokens, "reasoning_tokens": reasoning_tokens}
    usage |= {name: value for name, value in extra.items() if value is not None}
    return {
        "type": "generation.finished",
        "message_id": message_id,
        "finish_reason": finish_reason,
        "usage": usage,
        "cost": cost,
        "ttft_ms": ttft_ms,
        "html": html,
        "message_html": message_html,
    }


def generation_error(*, message_id: int, code: str, message: str, retryable: bool, message_html: str) -> Frame:
    return {
        "type": "generation.error",
        "message_id": message_id,
        "code": code,
        "message": message,
        "retryable": retryable,
        "message_html": message_html,
    }


def image_started(request_id: str, prompt: str) -> Frame:
    return {"type": "image.started", "request_id": request_id, "prompt": prompt}


def image_finished(request_id: str, images: list[dict[str, Any]]) -> Frame:
    return {"type": "image.finished", "request_id": request_id, "images": images}


def image_error(request_id: str, code: str, message: str) -> Frame:
    return {"type": "image.error", "request_id": request_id, "code": code, "message": message}
