"""What the control channel's GSI layer hands the session: replies to send, plain commands, the login.

Kept apart from :mod:`.control` so that a server without GSI can tell these
events from plain lines without loading ``cryptography`` (about 10 MiB of
memory and 30 ms of start-up).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from .proxy import Credential


@attrs.frozen
class Reply:
    code: int
    text: str


@attrs.frozen
class Command:
    """A plain command line for the session (unwrapped if it arrived protected)."""

    line: bytes


@attrs.frozen
class Authenticated:
    """The context is complete: the peer's identity and, if it delegated one, its credential."""

    identity: str
    delegated: Credential | None
    reply: Reply


Event = Reply | Command | Authenticated
