"""An uploaded import file, read safely into a JSON value: a JSON file as it is, or the one member of a
zip that matters (``conversations.json``, as ChatGPT and Claude ship it), read in memory, never extracted.

Every limit refuses the file with an ``ImportProblem`` before anything is written. The limits, each a
setting (defaults in ``Limits``): the upload's size; the JSON text's size; and for a zip, its member
count, the total its members declare uncompressed, and the member's compression ratio, which is checked
again on the bytes actually inflated, since a zip's declared sizes are whatever its maker wrote.

May import: ``records``.
"""

from __future__ import annotations

import json
import zipfile
import zlib
from dataclasses import dataclass
from typing import IO, Any

from django.conf import settings

from qtap_site.transfer.records import ImportProblem

MiB = 1024 * 1024
MEMBER = "conversations.json"
READ_BYTES = 1 * MiB


@dataclass(frozen=True)
class Limits:
    upload_bytes: int = 100 * MiB
    json_bytes: int = 256 * MiB
    zip_members: int = 10_000
    zip_total_bytes: int = 4096 * MiB  # exports with images are large; only the JSON member is read
    zip_ratio: float = 200.0  # JSON inflates 5-30x; a bomb, thousands of times

    @classmethod
    def from_settings(cls) -> Limits:
        return cls(
            upload_bytes=getattr(settings, "QTAP_IMPORT_MAX_BYTES", cls.upload_bytes),
            json_bytes=getattr(settings, "QTAP_IMPORT_MAX_JSON_BYTES", cls.json_bytes),
            zip_members=getattr(settings, "QTAP_IMPORT_MAX_ZIP_MEMBERS", cls.zip_members),
            zip_total_bytes=getattr(settings, "QTAP_IMPORT_MAX_ZIP_TOTAL_BYTES", cls.zip_total_bytes),
            zip_ratio=getattr(settings, "QTAP_IMPORT_MAX_ZIP_RATIO", cls.zip_ratio),
        )


def read_upload(upload: Any, limits: Limits | None = None) -> tuple[str, Any]:
    """(the name errors call it by, its parsed JSON) for an uploaded file."""
    limits = limits or Limits.from_settings()
    name = str(getattr(upload, "name", "") or "upload").rsplit("/", 1)[-1]
    size = getattr(upload, "size", None)
    if size is not None and size > limits.upload_bytes:
        raise ImportProblem("too_large", f"{name}: {size} bytes; the limit is {limits.upload_bytes} bytes")
    upload.seek(0)
    head = upload.read(4)
    upload.seek(0)
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return _from_zip(name, upload, limits)
    parts: list[bytes] = []
    total = 0
    # A chunk at a time: ``read(cap)`` would set aside the whole cap in memory before reading a byte.
    while chunk := upload.read(READ_BYTES):
        total += len(chunk)
        if total > limits.json_bytes:
            raise ImportProblem("too_large", f"{name}: more than the {limits.json_bytes} bytes of JSON accepted")
        parts.append(chunk)
    return name, parse_json(name, b"".join(parts))


def parse_json(name: str, data: bytes) -> Any:
    stripped = data.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped[:1] not in (b"{", b"["):
        raise ImportProblem("not_json", f"{name}: neither a JSON file nor a zip (it starts with {data[:8]!r})")
    try:
        return json.loads(stripped.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ImportProblem("not_json", f"{name}: not UTF-8 text (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        # An unterminated string ran to the end of the text; any other error at the very end is the same.
        early = exc.msg.startswith("Unterminated string") or exc.pos >= len(stripped.rstrip())
        ending = "; the file ends too early: is it complete?" if early else ""
        where = f"line {exc.lineno} column {exc.colno}"
        raise ImportProblem("bad_json", f"{name}: not valid JSON: {exc.msg} ({where}){ending}") from None
    except RecursionError:
        raise ImportProblem("bad_json", f"{name}: JSON nested too deeply to read") from None


def _from_zip(name: str, upload: IO[bytes], limits: Limits) -> tuple[str, Any]:
    try:
        archive = zipfile.ZipFile(upload)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ImportProblem("bad_zip", f"{name}: not a readable zip ({exc})") from None
    with archive:
        members = archive.infolist()
        if len(members) > limits.zip_members:
            raise ImportProblem(
                "zip_refused", f"{name}: {len(members)} members; at most {limits.zip_members} are accepted"
            )
        declared = sum(m.file_size for m in members)
        if declared > limits.zip_total_bytes:
            raise ImportProblem(
                "zip_refused",
                f"{name}: its members inflate to {declared} bytes; at most {limits.zip_total_bytes} are accepted",
            )
        wanted = sorted(
            (m for m in members if not m.is_dir() and m.filename.rsplit("/", 1)[-1] == MEMBER),
            key=lambda m: m.filename.count("/"),
        )
        if not wanted:
            raise ImportProblem("bad_export", f"{name}: the zip holds no {MEMBER} (ChatGPT and Claude exports do)")
        member = wanted[0]
        where = f"{name}: {member.filename}"
        cap = min(limits.json_bytes, int(max(member.compress_size, 1) * limits.zip_ratio))
        if member.file_size > limits.json_bytes:
            raise ImportProblem("too_large", f"{where}: {member.file_size} bytes; at most {limits.json_bytes}")
        if member.file_size > cap:
            raise ImportProblem("zip_refused", f"{where}: inflates more than {limits.zip_ratio:g} times (a zip bomb?)")
        return member.filename, parse_json(member.filename, _inflate(archive, member, cap, where, limits))


def _inflate(archive: zipfile.ZipFile, member: zipfile.ZipInfo, cap: int, where: str, limits: Limits) -> bytes:
    """The member's bytes, read a chunk at a time and refused as soon as they pass ``cap`` or what the
    member declared."""
    parts: list[bytes] = []
    total = 0
    bound = min(cap, member.file_size)
    try:
        with archive.open(member) as handle:
            while chunk := handle.read(READ_BYTES):
                total += len(chunk)
                if total > bound:
                    raise ImportProblem(
                        "zip_refused",
                        f"{where}: inflates past the {bound} bytes it may hold"
                        f" (ratio cap {limits.zip_ratio:g}, JSON cap {limits.json_bytes})",
                    )
                parts.append(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError) as exc:
        raise ImportProblem("bad_zip", f"{where}: cannot be read ({exc})") from None
    except RuntimeError as exc:  # encrypted members
        raise ImportProblem("bad_zip", f"{where}: {exc}") from None
    return b"".join(parts)
