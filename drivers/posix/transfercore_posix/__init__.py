"""The POSIX reference driver for transfercore."""

from .driver import PosixDriver

__all__ = ["PosixDriver"]
