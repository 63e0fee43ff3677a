"""Client → server websocket frames, validated with pydantic, and the protocol's error frame.

A frame that fails here never reaches a service: the consumer answers ``error`` and stays open.
A value the database could not store or look up is refused here, naming its field, rather than
failing later inside a shared send batch: text must be whole Unicode (JSON can spell a lone
surrogate, ``"\\ud800"``, which no UTF-8 column takes) and an id must fit a 64-bit key.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError

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


ClientFrame = Annotated[
    MessageSend | GenerationStop | MessageRegenerate | ImageGenerate | Ping, Field(discriminator="type")
]
_adapter: TypeAdapter[Any] = TypeAdapter(ClientFrame)
FRAME_TYPES = ("message.send", "generation.stop", "message.regenerate", "image.generate", "ping")


class FrameError(Exception):
    """A bad client frame; ``code`` is the protocol's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def frame(self) -> dict[str, str]:
        return error_frame(self.code, self.message)


def error_frame(code: str, message: str) -> dict[str, str]:
    return {"type": "error", "code": code, "message": message}


def parse_frame(text: str | None, *, max_bytes: int) -> Any:
    """Parse one text frame into its model, raising ``FrameError`` with the protocol's code."""
    if text is None:
        raise FrameError("bad_request", "Frames must be JSON text, not binary.")
    # Measured on the raw text, before parsing: a huge frame costs nothing to refuse.
    if len(text) > max_bytes or len(text.encode("utf-8")) > max_bytes:
        raise FrameError("too_large", f"Frame is larger than {max_bytes} bytes.")
    try:
        data = json.loads(text)
    except ValueError:
        raise FrameError("bad_request", "Frame is not valid JSON.") from None
    except RecursionError:
        raise FrameError("bad_request", "Frame is nested too deeply to parse.") from None
    if not isinstance(data, dict):
        raise FrameError("bad_request", "Frame must be a JSON object with a 'type'.")
    kind = data.get("type")
    if not isinstance(kind, str):
        raise FrameError("bad_request", "Frame has no 'type'.")
    if kind not in FRAME_TYPES:
        raise FrameError("bad_request", f"Unknown frame type {kind[:50]!r}. Known: {', '.join(FRAME_TYPES)}.")
    try:
        return _adapter.validate_python(data)
    except ValidationError as exc:
        raise FrameError("bad_request", _describe(exc)) from None
    except RecursionError:
        raise FrameError("bad_request", "Frame is nested too deeply to validate.") from None


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors(include_url=False, include_input=False)[:5]:
        location = ".".join(str(part) for part in error["loc"][1:]) or "frame"
        problems.append(f"{location}: {error['msg']}")
    return "Invalid frame: " + "; ".join(problems)
