"""Imagen image generation through the Generative Language API: ``POST models/{model}:predict``.

The answer carries base64 images with a declared MIME type; the type reported to qtap is the one the
bytes themselves show, so a mislabelled or non-image answer never reaches a browser as an image.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import time
from typing import Any

import filetype
import httpx

from providers import errors
from providers.contract import GeneratedImage, ImageRequest

from .provider import GeminiHTTP, model_path

ASPECT_RATIOS = ("1:1", "3:4", "4:3", "9:16", "16:9")


def aspect_ratio_for(request: ImageRequest) -> str | None:
    """The request's aspect ratio, or the supported one nearest to its ``size`` (e.g. 1792x1024 → 16:9)."""
    if request.aspect_ratio:
        return request.aspect_ratio
    if not request.size or "x" not in request.size:
        return None
    width, height = (int(v) for v in request.size.lower().split("x", 1))
    if not width or not height:
        return None
    wanted = math.log(width / height)

    def distance(ratio: str) -> float:
        w, h = (int(v) for v in ratio.split(":"))
        return abs(math.log(w / h) - wanted)

    return min(ASPECT_RATIOS, key=distance)


def decode_image(provider: str, prediction: dict[str, Any]) -> GeneratedImage:
    try:
        data = base64.b64decode(prediction["bytesBase64Encoded"], validate=True)
    except (binascii.Error, ValueError):
        raise errors.ProtocolError(provider, "an image in the answer is not valid base64") from None
    kind = filetype.guess(data)
    if kind is None or not kind.mime.startswith("image/"):
        raise errors.ProtocolError(provider, "the answer's image data is not an image")
    return GeneratedImage(data=data, mime_type=kind.mime, revised_prompt=prediction.get("prompt"))


class GoogleImageProvider(GeminiHTTP):
    def build_body(self, request: ImageRequest) -> dict[str, Any]:
        # includeRaiReason: a filtered image comes back as its reason instead of silently missing.
        parameters: dict[str, Any] = {"sampleCount": request.n, "includeRaiReason": True}
        ratio = aspect_ratio_for(request)
        if ratio:
            parameters["aspectRatio"] = ratio
        if request.negative_prompt:
            parameters["negativePrompt"] = request.negative_prompt
        if request.seed is not None:
            parameters["seed"] = request.seed
            parameters["addWatermark"] = False  # Imagen accepts a seed only without the watermark
        return {"instances": [{"prompt": request.prompt}], "parameters": parameters}

    async def generate(self, request: ImageRequest) -> list[GeneratedImage]:
        self.require_key()
        started = time.monotonic()
        body = self.build_body(request)
        self.logger.debug(
            "image request model=%s host=%s n=%d parameters=%s",
            request.model,
            httpx.URL(self.base_url).host,
            request.n,
            sorted(body["parameters"]),
        )
        try:
            async with self.open("POST", f"{model_path(request.model)}:predict", json_body=body) as response:
                raw = await response.aread()
            images = self.parse(raw)
        except errors.ProviderError as exc:
            self.logger.warning("%s error: %s", exc.code, exc.message)
            raise
        self.logger.debug("images=%d duration_ms=%.0f", len(images), (time.monotonic() - started) * 1000)
        return images

    def parse(self, raw: bytes) -> list[GeneratedImage]:
        try:
            data = json.loads(raw)
        except ValueError:
            raise errors.ProtocolError(self.provider, "the answer was not JSON") from None
        predictions = data.get("predictions") if isinstance(data, dict) else None
        images: list[GeneratedImage] = []
        filtered: list[str] = []
        for prediction in predictions or []:
            if not isinstance(prediction, dict):
                continue
            if prediction.get("bytesBase64Encoded"):
                images.append(decode_image(self.provider, prediction))
            elif prediction.get("raiFilteredReason"):
                filtered.append(str(prediction["raiFilteredReason"]))
        if not images:
            if filtered:
                raise errors.ContentFilterError(self.provider, "; ".join(filtered))
            raise errors.ContentFilterError(self.provider, "no image was returned (the prompt may have been filtered)")
        return images
