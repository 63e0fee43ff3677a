"""Request and answer mapping for the dialect's image generation (``POST /images/generations``): which
fields each flavour takes, and what kind of image the returned bytes are. Pure functions, no I/O.

May import: ``providers.contract``.
"""

from __future__ import annotations

from typing import Any

import filetype

from providers.contract import ImageRequest


def build_image_body(request: ImageRequest, *, flavour: str) -> dict[str, Any]:
    """``flavour`` "openai" (gpt-image / dall-e) or "xai" (no size, quality or style)."""
    body: dict[str, Any] = {"model": request.model, "prompt": request.prompt, "n": request.n}
    model = request.model.lower()
    if flavour == "xai":
        body["response_format"] = "b64_json"
        # Only the grok-imagine family takes an aspect ratio; grok-2-image rejects unknown fields.
        if request.aspect_ratio and not model.startswith("grok-2-image"):
            body["aspect_ratio"] = request.aspect_ratio
        return body
    if request.size:
        body["size"] = request.size
    if request.quality:
        body["quality"] = request.quality
    if request.style and model.startswith("dall-e-3"):
        body["style"] = request.style
    if model.startswith("dall-e"):
        # DALL-E answers with short-lived URLs by default; ask for the bytes instead.
        body["response_format"] = "b64_json"
    return body


def sniff_image_mime(data: bytes, fallback: str = "image/png") -> str:
    kind = filetype.guess(data)
    return kind.mime if kind is not None and kind.mime.startswith("image/") else fallback
