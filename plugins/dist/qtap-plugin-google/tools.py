"""Gemini function calling (PROTOCOLS-reasoning-tools.md R4.3, R4.4): the request's ``tools`` and
``toolConfig``, the model turn's ``functionCall`` parts and the ``functionResponse`` parts that answer them.

``parameters`` takes a select subset of OpenAPI 3.0's schema, not JSON Schema: keys it does not know are a 400
("Unknown name … Cannot find field"), and so is an object with empty ``properties``. A tool's JSON Schema is
therefore cut down to that subset here (``$ref`` resolved, a type list read as a type and ``nullable``), and a
tool without parameters is declared without ``parameters``. The calls of a turn go back as they were received
(the provider state holds their parts, ``thoughtSignature`` and ``id`` included); calls without such a part
are rebuilt from the turn's ``tool_calls``.
"""

from __future__ import annotations

from typing import Any

from providers.contract import ChatRequest, Message
from providers.tool_mapping import result_name, tool_choice

# The Schema fields Gemini's ``parameters`` takes (google.ai.generativelanguage.v1beta.Schema).
SCHEMA_KEYS = frozenset(
    {
        "type",
        "format",
        "title",
        "description",
        "nullable",
        "enum",
        "maxItems",
        "minItems",
        "properties",
        "required",
        "minProperties",
        "maxProperties",
        "minLength",
        "maxLength",
        "pattern",
        "example",
        "anyOf",
        "propertyOrdering",
        "default",
        "items",
        "minimum",
        "maximum",
    }
)
MAX_REF_DEPTH = 8  # a recursive $ref is cut here rather than followed for ever
# What Google documents for calls it did not produce (history rebuilt without their signature): it skips the
# check that would otherwise refuse a Gemini 3 call part without one.
DUMMY_SIGNATURE = "skip_thought_signature_validator"
MODES = {"none": "NONE", "required": "ANY", "tool": "ANY"}


def gemini_schema(schema: Any, defs: dict[str, Any] | None = None, depth: int = 0) -> dict[str, Any]:
    """``schema`` (JSON Schema) in the OpenAPI subset Gemini takes: unknown keys dropped, ``$ref`` inlined,
    ``type: [x, "null"]`` as ``type: x, nullable``, ``const`` and ``oneOf`` as ``enum`` and ``anyOf``, an enum of
    non-strings (Gemini's enums are strings) said in the description instead, empty ``properties`` left out."""
    if not isinstance(schema, dict):
        return {}
    if defs is None:
        defs = {**(schema.get("definitions") or {}), **(schema.get("$defs") or {})}
    ref = schema.get("$ref")
    if isinstance(ref, str):
        target = defs.get(ref.rsplit("/", 1)[-1]) if depth < MAX_REF_DEPTH else None
        rest = {key: value for key, value in schema.items() if key != "$ref"}
        return gemini_schema({**(target or {"type": "object"}), **rest}, defs, depth + 1)
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "type" and isinstance(value, list):
            kinds = [kind for kind in value if kind != "null"]
            if kinds:
                out["type"] = kinds[0]
            if "null" in value:
                out["nullable"] = True
        elif key == "const":
            out["enum"] = [value]
        elif key in ("anyOf", "oneOf") and isinstance(value, list):
            out["anyOf"] = [gemini_schema(item, defs, depth) for item in value]
        elif key == "properties" and isinstance(value, dict):
            out["properties"] = {name: gemini_schema(item, defs, depth) for name, item in value.items()}
        elif key == "items":
            out["items"] = gemini_schema(value[0] if isinstance(value, list) and value else value, defs, depth)
        elif key in SCHEMA_KEYS:
            out[key] = value
    enum = out.get("enum")
    if isinstance(enum, list) and not all(isinstance(item, str) for item in enum):
        del out["enum"]
        allowed = "One of: " + ", ".join(str(item) for item in enum) + "."
        out["description"] = f"{out['description']} {allowed}" if out.get("description") else allowed
    if out.get("properties") == {}:
        del out["properties"]
    if isinstance(out.get("required"), list):
        out["required"] = [name for name in out["required"] if name in (out.get("properties") or {})]
        if not out["required"]:
            del out["required"]
    return out


def tool_fields(request: ChatRequest, provider: str) -> dict[str, Any]:
    """``tools: [{functionDeclarations}]`` and, unless the choice is ``auto`` (the API's default),
    ``toolConfig.functionCallingConfig``; nothing when the request offers no tools."""
    if not request.tools:
        return {}
    declarations = []
    for tool in request.tools:
        declaration: dict[str, Any] = {"name": tool.name, "description": tool.description}
        parameters = gemini_schema(tool.parameters)
        if parameters.get("properties"):  # a tool without parameters is declared without them
            declaration["parameters"] = parameters
        declarations.append(declaration)
    fields: dict[str, Any] = {"tools": [{"functionDeclarations": declarations}]}
    choice = tool_choice(request, provider)
    if choice.kind in MODES:
        config: dict[str, Any] = {"mode": MODES[choice.kind]}
        if choice.kind == "tool":
            config["allowedFunctionNames"] = [choice.name]
        fields["toolConfig"] = {"functionCallingConfig": config}
    return fields


def received_calls(state: Any) -> list[dict[str, Any]]:
    """The ``functionCall`` parts a turn's state holds, as received (signature and id included)."""
    entries = state.get("parts") if isinstance(state, dict) else None
    parts = [entry.get("part") for entry in entries or [] if isinstance(entry, dict)]
    return [part for part in parts if isinstance(part, dict) and isinstance(part.get("functionCall"), dict)]


def with_calls(parts: list[dict[str, Any]], message: Message) -> list[dict[str, Any]]:
    """The model turn's parts with its calls: the ``functionCall`` parts of its state when they name the turn's
    calls in order, as received, signature and id untouched (where they came, or after the text when the text
    no longer fits the state: the host trims a turn's text); otherwise the calls are rebuilt, the first
    carrying Google's documented stand-in signature."""
    names = [call.name for call in message.tool_calls]
    if [part["functionCall"].get("name") for part in parts if "functionCall" in part] == names:
        return parts
    kept = [part for part in parts if "functionCall" not in part]
    received = received_calls(message.provider_state)
    if names and [part["functionCall"].get("name") for part in received] == names:
        return kept + received
    rebuilt: list[dict[str, Any]] = [
        {"functionCall": {"name": call.name, "args": call.arguments}} for call in message.tool_calls
    ]
    if rebuilt:
        rebuilt[0]["thoughtSignature"] = DUMMY_SIGNATURE
    return kept + rebuilt


def given_ids(parts: list[dict[str, Any]]) -> set[str]:
    """The call ids Gemini itself sent in a model turn's parts (older models send none)."""
    return {
        str(part["functionCall"]["id"])
        for part in parts
        if isinstance(part.get("functionCall"), dict) and part["functionCall"].get("id")
    }


def function_response(message: Message, names: dict[str, str], ids: set[str]) -> dict[str, Any]:
    """A ``tool`` message as a ``functionResponse`` part: ``response: {output}`` or, for a failed call,
    ``{error}`` (the keys the API documents), with the call's ``id`` only when Gemini gave the call one."""
    response = {"error": message.content} if message.is_error else {"output": message.content}
    body: dict[str, Any] = {"name": result_name(message, names), "response": response}
    if message.tool_call_id and message.tool_call_id in ids:
        body["id"] = message.tool_call_id
    return {"functionResponse": body}
