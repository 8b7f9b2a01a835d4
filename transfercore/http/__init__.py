"""Resumable HTTP uploads: tus 1.0.0 and the IETF draft (interop version 8) over any driver.

:mod:`.protocol` decides every reply without I/O; :mod:`.records` keeps the
small durable record of each upload; :mod:`.app` is the ASGI application that
moves the bytes into a driver writer.  Every offset a reply names is the
durable prefix the destination's writer reported, never bytes only received.
"""

from __future__ import annotations

from .protocol import Config, UploadRecord

__all__ = ["Config", "UploadRecord"]
