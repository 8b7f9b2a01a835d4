"""What ``--xattrs`` and ``--owners`` keep, between local file systems.

Extended attributes (POSIX ACLs included: Linux keeps them as the
``system.posix_acl_*`` attributes) and the owner and group are read from the
source and set on the destination through the drivers' local paths, so both
ends must be local file systems (the posix driver).  The destination's
attributes become exactly the source's: names the source lacks are removed.
The object's inode is synced afterwards, so what was set is durable before
the entry is recorded complete.
"""

from __future__ import annotations

import errno
import os
import stat

from ..errors import CapabilityError, StorageError
from ..registry import Endpoint


def _local(end: Endpoint, path: str, what: str) -> str:
    local = end.driver.local_path(path)
    if local is None:
        raise CapabilityError(f"{what} are kept only between local file systems; driver "
                              f"{end.driver.name!r} has no local paths",
                              hint="copy without --xattrs / --owners")
    return local


def copy_attributes(src: Endpoint, spath: str, dst: Endpoint, dpath: str, *, xattrs: bool, owners: bool) -> None:
    """Give ``dpath`` the extended attributes and/or owner of ``spath``."""
    if not (xattrs or owners):
        return
    what = "extended attributes" if xattrs else "owners"
    s, d = _local(src, spath, what), _local(dst, dpath, what)
    try:
        st = os.lstat(s)
        link = stat.S_ISLNK(st.st_mode)
        if owners:
            os.chown(d, st.st_uid, st.st_gid, follow_symlinks=False)
            if not link and st.st_mode & (stat.S_ISUID | stat.S_ISGID):
                os.chmod(d, stat.S_IMODE(st.st_mode))  # chown clears them
        if xattrs and not link:  # Linux allows no user attributes on links
            wanted = {name: os.getxattr(s, name, follow_symlinks=False)
                      for name in os.listxattr(s, follow_symlinks=False)}
            for name in os.listxattr(d, follow_symlinks=False):
                if name not in wanted:
                    os.removexattr(d, name, follow_symlinks=False)
            for name, value in wanted.items():
                try:
                    if os.getxattr(d, name, follow_symlinks=False) == value:
                        continue
                except OSError as exc:
                    if exc.errno != errno.ENODATA:
                        raise
                os.setxattr(d, name, value, follow_symlinks=False)
        if not link:
            fd = os.open(d, os.O_RDONLY | os.O_CLOEXEC)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    except OSError as exc:
        hint = "run as root to keep owners" if owners and exc.errno == errno.EPERM else \
            "the destination file system may not support them"
        raise StorageError(f"cannot keep the {what} of {dpath}: {exc.strerror or exc}", errno=exc.errno,
                           hint=hint) from exc
