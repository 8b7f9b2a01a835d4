"""JSON documents sealed with a SHA-256 of their own content.

Every record the driver keeps on disk (the single writer's sidecar, the
range writers' records and anchor) is one: a torn or edited document fails
its own checksum and is refused instead of believed.
"""

from __future__ import annotations

import hashlib
import json


class Unsealed(ValueError):
    """The document cannot be trusted; the message says why, as a phrase
    that follows the document's name ("... is not valid JSON")."""


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
