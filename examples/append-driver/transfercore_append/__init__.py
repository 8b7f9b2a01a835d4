"""An example transfercore driver: ordered writes, durable prefix markers."""

from .driver import AppendDriver

__all__ = ["AppendDriver"]
