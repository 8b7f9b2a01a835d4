"""JSON documents sealed with a SHA-256 of their own content.

Every record the driver keeps on disk (the single writer's sidecar, the
range writers' records and anchor) is one: a torn or edited document fails
its own checksum and is refused instead of believed.
"""

from __future__ import annotations

import hashlib
import json

from transfercore.errors import from_oserror

#: No honest record is larger (10,000 ranges fit easily); a larger file is not read into memory.
MAX_BYTES = 4 * 1024 * 1024


class Unsealed(ValueError):
    """The document cannot be trusted; the message says why, as a phrase
    that follows the document's name ("... is not valid JSON")."""


def read(path: str, what: str) -> bytes | None:
    """The bytes of the record at ``path``, ``None`` when there is none.

    :class:`Unsealed` when it is larger than any honest record; a storage
    error (``cannot read WHAT PATH``) when it cannot be read.
    """
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise from_oserror(exc, f"cannot read {what} {path}") from exc
    if len(data) > MAX_BYTES:
        raise Unsealed(f"is larger than {MAX_BYTES} bytes")
    return data


def _digest(body: dict[str, object]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(canonical).hexdigest()


def seal(body: dict[str, object]) -> bytes:
    return (json.dumps(body | {"sha256": _digest(body)}, sort_keys=True) + "\n").encode()


def unseal(data: bytes, fmt: str, version: int) -> dict[str, object]:
    """The document's fields (without the seal) if it is intact and of ``fmt`` at ``version``."""
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Unsealed(f"is not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise Unsealed("is not a JSON object")
    claimed = doc.pop("sha256", None)
    if claimed != _digest(doc):
        raise Unsealed("fails its own checksum (torn or edited)")
    if doc.get("format") != fmt or doc.get("version") != version:
        raise Unsealed(f"has an unknown format {doc.get('format')!r} v{doc.get('version')!r}")
    return doc
