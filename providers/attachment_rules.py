"""Whether a profile's provider and model take a file, and if not, why, in words a person reads.

The one rule every caller asks: the upload endpoint (before a file is stored), the send path (before a
message is saved), the provider base (before any request), the history builder (which files of earlier
turns still go) and the chat page (which draws the same words before anything is uploaded). It reads the
manifest only: ``attachmentSupport`` for the provider, and the first matching ``modelRules`` entry's
``attachmentTypes`` for a model that takes fewer of them (a text-only model of a provider with vision).

May import: ``providers.manifest``. No Django.
"""

from __future__ import annotations

from providers.manifest import ProviderConfig

_NOUNS = {"application/pdf": ("PDF", "PDFs"), "text/plain": ("Text file", "text files"),
          "text/markdown": ("Markdown file", "Markdown files")}  # fmt: skip


def noun(mime_type: str) -> tuple[str, str]:
    """What a file of ``mime_type`` is called: (one, many), e.g. ("PNG image", "images")."""
    if mime_type.startswith("image/"):
        return f"{mime_type.removeprefix('image/').upper()} image", "images"
    return _NOUNS.get(mime_type, (f"{mime_type} file", f"{mime_type} files"))


def size_words(size: int) -> str:
    """``size`` bytes as people say it: 5 MB, 512 KB (binary multiples, as the manifests count)."""
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if size >= scale:
            value = size / scale
            return f"{value:.0f} {unit}" if value == int(value) or value >= 10 else f"{value:.1f} {unit}"
    return f"{size} bytes"


def accepted_types(config: ProviderConfig, model: str) -> tuple[str, ...]:
    """The MIME types ``model`` of this provider takes: the provider's, narrowed by the model's rule."""
    support = config.attachment_support
    if not support.supported:
        return ()
    rule = config.rule_for(model)
    if rule is None or rule.attachment_types is None:
        return support.mime_types
    return tuple(t for t in support.mime_types if t in rule.attachment_types)


def refusal(config: ProviderConfig, model: str, *, mime_type: str, size: int) -> str:
    """Why this provider's ``model`` cannot take a file of ``mime_type`` and ``size`` bytes ("" when it can)."""
    one, many = noun(mime_type)
    provider = config.display_name
    if mime_type not in accepted_types(config, model):
        if config.accepts_mime_type(mime_type):  # the provider does, this model does not
            return f"{provider}'s {model} does not take {many}."
        accepted = ", ".join(config.attachment_support.mime_types) if config.attachment_support.supported else ""
        return f"{provider} does not take {many}." + (f" It accepts {accepted}." if accepted else "")
    limit = config.attachment_support.max_bytes
    if limit is not None and size > limit:
        return f"{one} larger than {size_words(limit)}, the most {provider} accepts."
    return ""
