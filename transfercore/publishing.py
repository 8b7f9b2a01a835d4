"""Verify before publish, decided in one place for every front end (sans-I/O).

An object reaches its final name only complete and, when the checksum it
must have is known, verified.  The front ends that know that checksum (the
engine and ``copy -r``, from the source they read; the HTTP server, from
the client's ``Repr-Digest``) ask :func:`plan` when to compare:

* ``BEFORE``: the destination reads back its durable bytes
  (``Writer.read_durable``, capability ``read_back``), so they are compared
  before ``complete()`` and a mismatch is never published;
* ``AFTER``: it cannot, so the object is compared once published (the
  storage's own checksum, or its bytes read) and removed again on a mismatch;
* ``NONE``: no checksum is known; ``complete()`` publishes.

:func:`leftover` says what a mismatch leaves and so what must be cleaned
up.  The GridFTP servers (``serve`` and the DSI) never know the checksum
when an upload ends (a client asks for it afterwards with ``CKSM``): their
uploads are ``NONE`` and publish on ``complete()`` (see ``gridftp/commit.py``).
"""

from __future__ import annotations

import enum


class Check(enum.Enum):
    """When an object is compared with the checksum it must have."""

    NONE = "none"
    BEFORE = "before publishing"
    AFTER = "once published"


class Leftover(enum.Enum):
    """What a mismatch leaves, and so what is to be done with it."""

    #: Nothing was published; the partial object stays under its hidden name for inspection.
    KEPT = "kept"
    #: Nothing was published, but the destination writes under the final name: the partial must go.
    PARTIAL_TO_REMOVE = "partial to remove"
    #: The object was published before it could be compared: it must be removed.
    PUBLISHED_TO_REMOVE = "published to remove"


def plan(expected: bool, read_back: bool) -> Check:
    """When to compare: ``expected`` says a checksum is known, ``read_back``
    that the destination's writer reads back its durable bytes."""
    if not expected:
        return Check.NONE
    return Check.BEFORE if read_back else Check.AFTER


def leftover(check: Check, atomic_publish: bool) -> Leftover:
    """What a mismatch found at ``check`` leaves on a destination with or without atomic publish."""
    if check is Check.NONE:
        raise ValueError("nothing is compared, so nothing can mismatch")
    if check is Check.AFTER:
        return Leftover.PUBLISHED_TO_REMOVE
    return Leftover.KEPT if atomic_publish else Leftover.PARTIAL_TO_REMOVE
