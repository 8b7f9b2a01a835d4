"""Typed wrapper over the HPSS client API (real or emulated) compiled by cffi.

Return codes become exceptions from :mod:`transfercore.errors`; the codes and
enumerations come from the compiled header, never from numbers written here.
"""

from __future__ import annotations

import enum
import errno as _errno
import os
import threading

import attrs

from transfercore.errors import StorageError, TransferCoreError, storage_error
from transfercore.statedir import state_dir

from ._hpss import ffi, lib

BACKEND: str = ffi.string(lib.tc_hpss_backend()).decode()
#: ``BytesMoved`` is preset to this; still there after an error means BZ4719.
BYTES_MOVED_SENTINEL = 2**64 - 1


class Code(enum.IntEnum):
    """HPSS return codes the driver tells apart (values from the header)."""

    NOERROR = lib.HPSS_E_NOERROR
    EINVAL = lib.HPSS_EINVAL
    EIO = lib.HPSS_EIO
    EFAULT = lib.HPSS_EFAULT
    ECONN = lib.HPSS_ECONN
    EOM = lib.HPSS_EOM


class PioOperation(enum.IntEnum):
    READ = lib.HPSS_PIO_READ
    WRITE = lib.HPSS_PIO_WRITE


class AuthMech(enum.IntEnum):
    UNIX = lib.hpss_authn_mech_unix
    KRB5 = lib.hpss_authn_mech_krb5


class HpssError(StorageError):
    """An HPSS call failed with a code that is not an errno value."""


class HpssHung(StorageError):
    """A PIO call made no progress within the watchdog's time."""


def check(rc: int, what: str) -> int:
    """Return ``rc`` when it is not an error; raise the project's error otherwise."""
    if rc >= 0:
        return rc
    if rc in (Code.ECONN, Code.EOM):
        raise HpssError(f"{what} failed: HPSS_{Code(rc).name} ({rc})", errno=_errno.EIO)
    err = -rc
    reason = os.strerror(err) if 0 < err < 4096 else f"HPSS error {rc}"
    raise storage_error(err, f"{what} failed: {reason}")


@attrs.frozen
class Version:
    text: str
    major: int
    minor: int

    @classmethod
    def parse(cls, text: str) -> Version:
        parts = (text.split(".") + ["0", "0"])[:2]
        try:
            return cls(text, int(parts[0]), int(parts[1]))
        except ValueError:
            return cls(text, 0, 0)

    @property
    def may_have_bz4719(self) -> bool:
        return (self.major, self.minor) < (7, 5)


def version() -> Version:
    return Version.parse(ffi.string(lib.hpss_BuildLevelString()).decode(errors="replace"))


@attrs.frozen
class Credentials:
    principal: str
    authenticator: str
    mech: AuthMech = AuthMech.UNIX


_login_lock = threading.Lock()
_logged_in: Credentials | None = None


#: Where the emulator keeps its namespace when ``HPSS_EMU_ROOT`` is not set.
EMULATOR_DIR = "hpss-emulator"


def emulator_root() -> str | None:
    """The emulator's namespace directory (None against a real HPSS).

    ``$HPSS_EMU_ROOT``, else ``hpss-emulator`` under the user's state
    directory, created on first use, so ``hpss:///path`` works with no setup.
    """
    if BACKEND != "emulator":
        return None
    return os.environ.get("HPSS_EMU_ROOT") or os.fspath(state_dir() / EMULATOR_DIR)


def _prepare_emulator() -> None:
    if BACKEND != "emulator" or os.environ.get("HPSS_EMU_ROOT"):
        return
    root = os.fspath(state_dir() / EMULATOR_DIR)
    os.makedirs(root, mode=0o700, exist_ok=True)
    # The emulator reads its settings from the environment at each call.
    os.environ["HPSS_EMU_ROOT"] = root


def login(creds: Credentials) -> None:
    """Log in once per process (the API must not be used before)."""
    global _logged_in
    with _login_lock:
        if _logged_in == creds:
            return
        _prepare_emulator()
        principal = ffi.new("char[]", creds.principal.encode())
        auth = ffi.new("char[]", creds.authenticator.encode())
        rc = lib.hpss_SetLoginCred(
            principal, creds.mech, lib.hpss_rpc_cred_client, lib.hpss_rpc_auth_type_keytab, auth
        )
        if rc != 0:
            hint = (
                f"the emulator keeps its files in HPSS_EMU_ROOT ({emulator_root()}): it must be an existing directory"
                if BACKEND == "emulator"
                else "check the principal and keytab (options principal=, keytab=)"
            )
            raise TransferCoreError(f"HPSS login as {creds.principal!r} failed ({rc})", hint=hint)
        _logged_in = creds


@attrs.frozen
class Stat:
    size: int
    mode: int
    #: The object's number in the namespace (``st_ino``): a new file gets a new one.
    ino: int = 0
    #: Seconds since the epoch.
    mtime: int = 0


def _stat(buf: object) -> Stat:
    return Stat(int(buf.st_size), int(buf.st_mode), int(buf.st_ino), int(buf.hpss_st_mtime))  # type: ignore[attr-defined]


def lstat(path: str) -> Stat:
    buf = ffi.new("hpss_stat_t *")
    check(lib.hpss_Lstat(path.encode(), buf), f"hpss_Lstat({path})")
    return _stat(buf)


def stat(path: str) -> Stat:
    buf = ffi.new("hpss_stat_t *")
    check(lib.hpss_Stat(path.encode(), buf), f"hpss_Stat({path})")
    return _stat(buf)


def listdir(path: str) -> list[str]:
    """Names in the directory ``path``, without ``.`` and ``..``."""
    dirfd = check(lib.hpss_Opendir(path.encode()), f"hpss_Opendir({path})")
    names: list[str] = []
    entry = ffi.new("hpss_dirent_t *")
    try:
        while True:
            check(lib.hpss_Readdir(dirfd, entry), f"hpss_Readdir({path})")
            length = int(entry.d_namelen)
            if length == 0:
                break
            name = ffi.unpack(entry.d_name, length).decode(errors="surrogateescape")
            if name not in (".", ".."):
                names.append(name)
    finally:
        check(lib.hpss_Closedir(dirfd), f"hpss_Closedir({path})")
    return names


def open_file(path: str, flags: int, size_hint: int = 0, mode: int = 0o644) -> tuple[int, int]:
    """Open; returns (descriptor, file stripe width from the COS hints)."""
    hints_in = ffi.new("hpss_cos_hints_t *")
    prio = ffi.new("hpss_cos_priorities_t *")
    hints_out = ffi.new("hpss_cos_hints_t *")
    if size_hint:
        # Let HPSS pick a class of service that fits the file.
        hints_in.MinFileSize = size_hint
        hints_in.MaxFileSize = size_hint
        prio.MinFileSizePriority = lib.LOWEST_PRIORITY
        prio.MaxFileSizePriority = lib.LOWEST_PRIORITY
    fd = check(lib.hpss_Open(path.encode(), flags, mode, hints_in, prio, hints_out), f"hpss_Open({path})")
    return fd, max(1, int(hints_out.StripeWidth))


def pread_into(fd: int, view: memoryview, offset: int, path: str) -> int:
    """Read into ``view`` from ``offset`` with ``hpss_SetFileOffset`` and
    ``hpss_Read`` (serial I/O, not PIO); returns the bytes read, fewer only at
    the end of the file.  The descriptor's offset moves: give each reading
    thread a descriptor of its own."""
    where = ffi.new("u_signed64 *")
    check(
        lib.hpss_SetFileOffset(fd, offset, lib.SEEK_SET, lib.HPSS_SET_OFFSET_FORWARD, where),
        f"hpss_SetFileOffset({path}, {offset})",
    )
    if int(where[0]) != offset:
        raise StorageError(f"hpss_SetFileOffset({path}, {offset}) moved to {int(where[0])}", errno=_errno.EIO)
    got = 0
    total = view.nbytes
    while got < total:
        chunk = view[got:]
        n = check(lib.hpss_Read(fd, ffi.from_buffer(chunk), chunk.nbytes), f"hpss_Read({path}, {offset + got})")
        if n == 0:
            break
        got += n
    return got


def close(fd: int, path: str = "") -> None:
    check(lib.hpss_Close(fd), f"hpss_Close({path or fd})")


def unlink(path: str) -> None:
    check(lib.hpss_Unlink(path.encode()), f"hpss_Unlink({path})")


def rename(src: str, dst: str) -> None:
    check(lib.hpss_Rename(src.encode(), dst.encode()), f"hpss_Rename({src}, {dst})")


def mkdir(path: str, mode: int = 0o755) -> None:
    check(lib.hpss_Mkdir(path.encode(), mode), f"hpss_Mkdir({path})")


def rmdir(path: str) -> None:
    check(lib.hpss_Rmdir(path.encode()), f"hpss_Rmdir({path})")


def chmod(path: str, mode: int) -> None:
    check(lib.hpss_Chmod(path.encode(), mode & 0o7777), f"hpss_Chmod({path})")


def utime(path: str, mtime: int) -> None:
    """Both times of ``path`` set to ``mtime`` (seconds: HPSS keeps no finer times)."""
    check(lib.tc_Utime(path.encode(), mtime), f"hpss_Utime({path})")


def set_attrs(path: str, values: dict[str, str]) -> None:
    keep = [ffi.new("char[]", s.encode()) for kv in values.items() for s in kv]
    pairs = ffi.new("hpss_userattr_t[]", len(values))
    for i in range(len(values)):
        pairs[i].Key, pairs[i].Value = keep[2 * i], keep[2 * i + 1]
    lst = ffi.new("hpss_userattr_list_t *")
    lst.len, lst.Pair = len(values), pairs
    check(lib.hpss_UserAttrSetAttrs(path.encode(), lst, ffi.NULL), f"hpss_UserAttrSetAttrs({path})")


def delete_attrs(path: str, keys: list[str]) -> None:
    """Remove ``keys`` from the file's attributes; keys that are not set are no error."""
    names = [ffi.new("char[]", k.encode()) for k in keys]
    pairs = ffi.new("hpss_userattr_t[]", len(keys))
    for i in range(len(keys)):
        pairs[i].Key, pairs[i].Value = names[i], ffi.NULL
    lst = ffi.new("hpss_userattr_list_t *")
    lst.len, lst.Pair = len(keys), pairs
    rc = lib.hpss_UserAttrDeleteAttrs(path.encode(), lst, ffi.NULL)
    if rc != -_errno.ENOENT:  # some releases say ENOENT for a key that is not set
        check(rc, f"hpss_UserAttrDeleteAttrs({path})")


_XML_SIZE = 1024


def get_attrs(path: str, keys: list[str]) -> dict[str, str]:
    """Values of ``keys`` ("" when absent), XML wrapping removed."""
    names = [ffi.new("char[]", k.encode()) for k in keys]
    values = [ffi.new("char[]", _XML_SIZE) for _ in keys]
    pairs = ffi.new("hpss_userattr_t[]", len(keys))
    for i in range(len(keys)):
        pairs[i].Key, pairs[i].Value = names[i], values[i]
    lst = ffi.new("hpss_userattr_list_t *")
    lst.len, lst.Pair = len(keys), pairs
    check(
        lib.hpss_UserAttrGetAttrs(path.encode(), lst, lib.UDA_API_VALUE, _XML_SIZE - 1),
        f"hpss_UserAttrGetAttrs({path})",
    )
    return {k: _strip_xml(ffi.string(v).decode(errors="replace")) for k, v in zip(keys, values, strict=True)}


def _strip_xml(text: str) -> str:
    # Some HPSS releases return "<?xml ...?><leaf>value</leaf>" even for UDA_API_VALUE.
    text = text.strip()
    if text.startswith("<?xml"):
        text = text[text.find("?>") + 2 :].strip()
    if text.startswith("<") and text.endswith(">") and "</" in text:
        text = text[text.find(">") + 1 : text.rfind("</")]
    return text
