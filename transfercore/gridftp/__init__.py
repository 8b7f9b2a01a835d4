"""A GridFTP-compatible server and its sans-I/O protocol codecs.

The protocol modules do no I/O (bytes in, events out; events in, bytes out),
in the manner of h11, so other services can reuse them:

* :mod:`.control`: command-line framing and reply formatting,
* :mod:`.modee`: MODE E block framing,
* :mod:`.session`: the control-session state machine (its handlers; the
  actions it asks for in :mod:`.actions`, its tables in :mod:`.sessiontable`),
* :mod:`.markers`: 111 restart and 112 performance markers, and when they are due,
* :mod:`.upload` and :mod:`.download`: what one transfer does, from the
  destination's declared capabilities, and whether it ended complete.

:mod:`.server` is the asyncio server built on them and a storage driver (the
control connections), :mod:`.transfers` its data transfers.  Ordered
delivery into destinations that need it is the core's
:class:`transfercore.reorder.ReorderWindow`.
"""

from .control import BadLine, Command, CommandReader, Reply
from .errors import BadArgument, BadBlockHeader, GridFTPError, LocalProtocolError, RemoteProtocolError
from .modee import ModeEDecoder, encode_block, encode_eod, encode_eof_eod
from .session import Session, SessionConfig

__all__ = [
    "BadArgument",
    "BadBlockHeader",
    "BadLine",
    "Command",
    "CommandReader",
    "GridFTPError",
    "LocalProtocolError",
    "ModeEDecoder",
    "RemoteProtocolError",
    "Reply",
    "Session",
    "SessionConfig",
    "encode_block",
    "encode_eod",
    "encode_eof_eod",
]
