"""Fuzzing the two parsers that read outside input: the websocket frame parser (and the consumer behind
it) and the plugin manifest loader. Bad input gets the parser's own error, never another exception."""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path
from typing import Any

import pytest
from channels.layers import channel_layers
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from providers.errors import ManifestError
from providers.manifest import Manifest, parse_manifest
from qtap_site.chat.delivery import _running
from qtap_site.chat.protocol import FRAME_TYPES, FrameError, parse_frame
from tests.support.wsclient import InProcessTab

MAX_BYTES = 4096
BUNDLED = sorted((Path(__file__).resolve().parents[2] / "plugins" / "dist").glob("*/manifest.json"))

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=30))
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)),
    max_leaves=12,
)
frame_fields = st.dictionaries(
    st.sampled_from(
        ["type", "content", "attachments", "profile_id", "client_msg_id", "message_id", "prompt", "n", "size"]
    ),
    json_values,
    max_size=6,
)
frames = st.one_of(
    st.text(max_size=200),
    json_values.map(json.dumps),
    frame_fields.map(json.dumps),
    st.builds(lambda kind, rest: json.dumps({**rest, "type": kind}), st.sampled_from(FRAME_TYPES), frame_fields),
)


def _check_frame(text: str) -> None:
    try:
        parsed = parse_frame(text, max_bytes=MAX_BYTES)
    except FrameError as exc:
        assert exc.code in ("bad_request", "too_large")
        assert exc.message and len(exc.message) < 2000
    else:
        assert parsed.type in FRAME_TYPES


@settings(max_examples=400, deadline=None)
@given(frames)
def test_the_frame_parser_answers_a_frame_or_a_frame_error(text: str) -> None:
    _check_frame(text)


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=64).map(lambda b: b.decode("latin-1")), st.integers(min_value=0, max_value=3))
def test_the_frame_parser_refuses_oversized_frames_before_parsing(prefix: str, extra: int) -> None:
    text = prefix + "é" * (MAX_BYTES // 2 + extra + 1)  # over the limit in UTF-8 bytes, maybe not in characters
    with pytest.raises(FrameError) as refused:
        parse_frame(text, max_bytes=MAX_BYTES)
    assert refused.value.code == "too_large"


def _mutations() -> st.SearchStrategy[dict[str, Any]]:
    bases = [json.loads(path.read_text()) for path in BUNDLED]

    def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        found = [prefix]
        if isinstance(value, dict):
            for key, inner in value.items():
                found += paths(inner, (*prefix, key))
        elif isinstance(value, list):
            for index, inner in enumerate(value):
                found += paths(inner, (*prefix, index))
        return found

    @st.composite
    def mutate(draw: st.DrawFn) -> dict[str, Any]:
        manifest = copy.deepcopy(draw(st.sampled_from(bases)))
        for _ in range(draw(st.integers(min_value=1, max_value=3))):
            where = draw(st.sampled_from(paths(manifest)[1:]))
            parent = manifest
            for step in where[:-1]:
                parent = parent[step]
            action = draw(st.sampled_from(["replace", "delete", "add"]))
            if action == "replace":
                parent[where[-1]] = draw(json_values)
            elif action == "delete":
                del parent[where[-1]]
            elif isinstance(parent, dict):
                parent[draw(st.text(max_size=12))] = draw(json_values)
            if not isinstance(manifest, dict):
                break
        return manifest

    return mutate()


def _check_manifest(data: Any) -> None:
    try:
        manifest = parse_manifest(data, source="fuzzed")
    except ManifestError as exc:
        assert str(exc).startswith("fuzzed")
    else:
        assert isinstance(manifest, Manifest)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(json_values, st.dictionaries(st.text(max_size=20), json_values, max_size=8), _mutations()))
def test_the_manifest_loader_answers_a_manifest_or_a_manifest_error(data: Any) -> None:
    _check_manifest(data)


def test_the_bundled_manifests_are_valid() -> None:
    """The control for the mutations: unmutated, every base manifest validates."""
    assert len(BUNDLED) == 10  # eight provider plugins, two tool plugins
    for path in BUNDLED:
        assert isinstance(parse_manifest(json.loads(path.read_text())), Manifest)


@pytest.mark.django_db(transaction=True)
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(frames, min_size=1, max_size=6))
def test_the_consumer_survives_any_sequence_of_frames(
    chat_on_fake: Any, alice_cookie: str, sequence: list[str]
) -> None:
    """Whatever the frames, each gets an answer and the socket stays open (a ping still gets its pong)."""

    async def scenario() -> None:
        channel_layers.backends.pop("default", None)
        _running.clear()
        tab = await InProcessTab.open(chat_on_fake.chat.pk, cookie=alice_cookie)
        await tab.expect("chat.state")
        for text in sequence:
            await tab.send(text)
            await tab.send({"type": "ping"})
            await tab.expect("pong", timeout=10)
        await tab.send({"type": "generation.stop"})
        await tab.drain(0.2)
        await tab.close()
        errors = tab.frames("error")
        assert all(f["code"] in ("bad_request", "too_large", "not_found", "busy", "rate_limited") for f in errors)

    asyncio.run(scenario())
    channel_layers.backends.pop("default", None)
    _running.clear()
