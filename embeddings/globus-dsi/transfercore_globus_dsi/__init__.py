"""transfercore inside the real Globus GridFTP server: a DSI that hands storage to any driver.

The compiled module ``libglobus_gridftp_server_transfercore.so`` sits in this
package's directory; :func:`module_dir` is what the server needs on its
library path (``LD_LIBRARY_PATH``) to ``load_dsi_module transfercore``.
"""

from __future__ import annotations

import os
from typing import Any

MODULE_FILE = "libglobus_gridftp_server_transfercore.so"
DSI_NAME = "transfercore"


def module_dir() -> str:
    """The directory holding the compiled DSI module."""
    return os.path.dirname(os.path.abspath(__file__))


def module_path() -> str:
    return os.path.join(module_dir(), MODULE_FILE)


def build_info() -> dict[str, Any]:
    """What the build recorded: the embedded Python's executable, libpython, prefixes."""
    from ._buildinfo import BUILD

    return dict(BUILD)
