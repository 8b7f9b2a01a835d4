"""A power-loss file system for durability tests (LazyFS semantics, FUSE).

Writes stay in memory until ``fsync``/``fdatasync`` of the file; a new, renamed
or removed directory entry becomes durable only on ``fsync`` of its parent
directory.  :meth:`PowerLossFS.crash` drops everything else.  See
``docs/power-loss.md``.
"""

from .model import Volume, VolumeStats
from .mount import FuseUnavailable, PowerLossError, PowerLossFS, check_fuse, is_mounted

__all__ = ["FuseUnavailable", "PowerLossError", "PowerLossFS", "Volume", "VolumeStats", "check_fuse", "is_mounted"]
