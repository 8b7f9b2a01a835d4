"""How a server says it listens: one line for its operator, and the port for a program.

``--port 0`` lets the kernel pick the port; a supervisor or a test reads it from
``--port-file``, written whole (renamed into place) only once the server accepts
connections, so a reader never sees a partial number or a port not yet open.
"""

from __future__ import annotations

import os
import sys


def announce_listening(command: str, host: str, port: int, port_file: str | None) -> None:
    print(f"transfercore {command}: listening on {host}:{port}", file=sys.stderr, flush=True)
    if port_file:
        tmp = f"{port_file}.tmp"
        with open(tmp, "w") as f:
            f.write(f"{port}\n")
        os.replace(tmp, port_file)


__all__ = ["announce_listening"]
