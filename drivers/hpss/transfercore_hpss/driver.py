"""The ``hpss`` driver: ``hpss:///abs/path?segment=256MiB``.

Data moves through HPSS PIO (see :mod:`.writer`, :mod:`.reader`).  An
unfinished write lives under the hidden partial name of :mod:`.names` and is
renamed to its final name only when every byte is acknowledged, so nothing
partial ever shows under a final name.  Restart is prefix-only: a marker
``[0, n)`` is accepted on resume only when the partial file's resume record
(:mod:`.record`) is of a write of the same size to the same file object, its
durable end is at least ``n``, and ``hpss_Lstat`` shows at least ``n`` bytes;
anything else is rejected so the transfer starts again from zero.
"""

from __future__ import annotations

import functools
import os
import stat as stat_mod
from collections.abc import Collection, Iterator, Mapping
from typing import Any, ClassVar

from transfercore import checksums
from transfercore.capabilities import Capabilities, RestartModel
from transfercore.contract import Driver, ObjectInfo, Reader, Writer
from transfercore.driverkit import check_open_write, checksum_range
from transfercore.errors import (
    IsADirectory,
    LocationError,
    NotFound,
    OptionError,
    RestartRejected,
)
from transfercore.options import OptionSpec, choice_option, float_option, int_option, size_option, str_option
from transfercore.ranges import RangeSet
from transfercore.sizes import parse_size

from . import api, checksum, names, record
from .reader import HpssReader
from .writer import open_writer

MiB = 1 << 20
#: Most segments a write executes at once (each holds a PIO group, two threads and a block).
MAX_INFLIGHT = 8


class HpssDriver(Driver):
    name: ClassVar[str] = "hpss"
    options: ClassVar[Mapping[str, OptionSpec]] = {
        "segment": size_option(
            "bytes per hpss_PIOExecute; each return is a restart point (a multiple of block)",
            default=256 * MiB,
            minimum=1,
        ),
        "block": size_option("PIO block size", default=4 * MiB, minimum=4096),
        "inflight": int_option(
            "segments executed at once, each in a PIO group of its own, so one segment's bytes move "
            "while the one before is made durable",
            default=1,
            minimum=1,
        ),
        "watchdog": float_option("seconds a PIO call may make no progress before it is an error", 900.0, 1.0),
        "principal": str_option("HPSS login principal (default: $HPSS_PRINCIPAL, else the user name)"),
        "keytab": str_option("keytab for the login (default: $HPSS_KEYTAB)"),
        "mech": choice_option("authentication mechanism", ("unix", "krb5"), "unix"),
    }

    def __init__(self, authority: str = "", options: Mapping[str, Any] | None = None) -> None:
        super().__init__(authority, options)
        if authority not in ("", "localhost"):
            raise LocationError(
                f"hpss URLs name paths in the HPSS this client is configured for; host {authority!r} is not supported",
                hint="write hpss:///abs/path (three slashes)",
            )
        # Accept parsed values (from the registry) and sizes as text (direct use).
        block = parse_size(self.settings["block"], what="block")
        segment = parse_size(self.settings["segment"], what="segment")
        if block >= 1 << 32:
            raise OptionError(f"driver 'hpss' option block={block}: must be below 4 GiB")
        if segment % block:
            raise OptionError(
                f"driver 'hpss' option segment={segment}: must be a multiple of block={block}",
                hint=f"e.g. segment={max(1, segment // block) * block}",
            )
        self.block, self.segment = block, segment
        try:
            self.inflight = int(self.settings["inflight"])
        except ValueError:
            raise OptionError(f"driver 'hpss' option inflight={self.settings['inflight']!r}: not a whole number") from None
        if not 1 <= self.inflight <= MAX_INFLIGHT:
            raise OptionError(f"driver 'hpss' option inflight={self.inflight}: give 1 to {MAX_INFLIGHT}")
        self.watchdog = float(self.settings["watchdog"])

    # -- description ---------------------------------------------------------------

    def capabilities(self) -> Capabilities:
        return Capabilities(
            restart=RestartModel.PREFIX,
            ordered_writes=True,
            max_writers=1,
            preferred_block_size=self.block,
            min_block_size=1,
            marker_granularity=self.segment,
            checksums=frozenset[str]({"md5"}),
            atomic_publish=True,
            crash_simulation=False,
            # Writers read acknowledged segments back (hpss_Read on a descriptor of their own).
            read_back=True,
        )

    def describe(self) -> dict[str, Any]:
        version = api.version()
        details: dict[str, Any] = {
            "backend": api.BACKEND,
            "hpss_version": version.text,
            "bz4719_possible": version.may_have_bz4719,
            "segment": self.segment,
            "block": self.block,
            "inflight": self.inflight,
        }
        root = api.emulator_root()
        if root is not None:
            details["emulator_root"] = root
        return details

    # -- session -----------------------------------------------------------------------

    def _login(self) -> None:
        principal = self.settings["principal"] or os.environ.get("HPSS_PRINCIPAL") or _user()
        keytab = self.settings["keytab"] or os.environ.get("HPSS_KEYTAB") or ""
        mech = api.AuthMech.KRB5 if self.settings["mech"] == "krb5" else api.AuthMech.UNIX
        api.login(api.Credentials(principal, keytab, mech))

    # -- objects -------------------------------------------------------------------------

    def stat(self, path: str) -> ObjectInfo:
        # Followed, as the reader follows it: SIZE and RETR of a link agree.
        self._login()
        return _info(path, api.stat(path))

    def lstat(self, path: str) -> ObjectInfo:
        self._login()
        return _info(path, api.lstat(path))

    def open_write(self, path: str, size: int, resume: RangeSet | None = None) -> Writer:
        resume = check_open_write(size, resume, f"hpss://{path}")
        self._login()
        try:
            if stat_mod.S_ISDIR(api.lstat(path).mode):
                raise IsADirectory(f"{path} is a directory", errno=21)
        except NotFound:
            pass
        if resume is None:
            return open_writer(path, size, self.block, self.segment, self.watchdog, inflight=self.inflight)
        held, offset = self._check_resume(path, size, resume)
        return open_writer(
            path, size, self.block, self.segment, self.watchdog, held, offset, inflight=self.inflight
        )

    def _check_resume(self, path: str, size: int, resume: RangeSet) -> tuple[record.ResumeRecord, int]:
        """The record that backs ``resume`` and the offset to resume at, or RestartRejected."""
        ranges = list(resume)
        if len(ranges) != 1 or ranges[0].start != 0:
            raise RestartRejected(f"HPSS resumes only a prefix [0, n); marker {resume} of {path} is not one")
        offset = ranges[0].end
        if offset > size:
            raise RestartRejected(f"marker {resume} of {path} goes past the size {size}")
        partial = names.partial_path(path)
        try:
            st = api.lstat(partial)
        except NotFound:
            raise RestartRejected(f"marker {resume} of {path}: the partial file does not exist") from None
        if stat_mod.S_ISDIR(st.mode):
            raise RestartRejected(f"marker {resume} of {path}: {partial} is a directory")
        held = record.load(partial)
        if held is None:
            raise RestartRejected(f"marker {resume} of {path}: HPSS holds no resume record for this file")
        if held.size != size:
            raise RestartRejected(
                f"marker {resume} of {path}: the recorded write has size {held.size}, this one {size}"
            )
        if held.object_id != st.ino:
            raise RestartRejected(f"marker {resume} of {path}: the file was replaced since its write began")
        if offset > held.durable:
            raise RestartRejected(
                f"marker {resume} of {path} is past the durable end {held.durable} HPSS recorded"
            )
        # As the HPSS DSI does: the bytes must be there, whatever the record says.
        if st.size < offset:
            raise RestartRejected(f"marker {resume} of {path} is past the {st.size} bytes HPSS holds")
        return held, offset

    def partial(self, path: str) -> RangeSet:
        """The recorded durable prefix of an unfinished write, when its partial file still backs it."""
        self._login()
        partial = names.partial_path(path)
        try:
            st = api.lstat(partial)
        except NotFound:
            return RangeSet()
        if stat_mod.S_ISDIR(st.mode):
            return RangeSet()
        held = record.load(partial)
        if held is None or not held.durable or held.object_id != st.ino:
            return RangeSet()
        if not held.durable <= st.size <= held.size:
            return RangeSet()
        return RangeSet.span(0, held.durable)

    def discard_partial(self, path: str) -> None:
        """Delete the unfinished write of ``path`` (its partial file, with the
        record in its attributes); the object under the final name is untouched."""
        self._login()
        partial = names.partial_path(path)
        try:
            if stat_mod.S_ISDIR(api.lstat(partial).mode):
                return  # not ours
            api.unlink(partial)
        except NotFound:
            pass

    def open_read(self, path: str) -> Reader:
        self._login()
        st = api.lstat(path)
        if stat_mod.S_ISDIR(st.mode):
            raise IsADirectory(f"{path} is a directory", errno=21)
        return HpssReader(path, self.block, self.watchdog)

    def checksum(self, path: str, algorithm: str) -> str | None:
        """The stored MD5 when Valid for this size; otherwise computed by reading
        the file back through PIO (and stored, for MD5)."""
        algorithm = checksums.canonical(algorithm)
        self._login()
        size = api.lstat(path).size
        if algorithm == "md5":
            known = checksum.stored(path, algorithm, size)
            if known:
                return known
        with HpssReader(path, self.block, self.watchdog) as reader:
            value = checksum_range(reader, algorithm, block_size=self.segment, parallel=1)
        if algorithm == "md5":
            checksum.store(path, algorithm, value, size)
        return value

    # -- namespace ---------------------------------------------------------------------------

    def list(self, path: str) -> Iterator[ObjectInfo]:
        self._login()
        base = path.rstrip("/")
        out = []
        for name in sorted(api.listdir(path)):
            if names.is_hidden(name):
                continue  # an unfinished write, not an object
            try:
                st = api.lstat(f"{base}/{name}")
            except NotFound:
                continue  # removed meanwhile
            out.append(_info(f"{base}/{name}", st))
        return iter(out)

    def sweep_partials(
        self, directory: str, discard: Collection[str], keep: Collection[str] = ()
    ) -> tuple[int, int]:
        self._login()
        try:
            hidden = {name for name in api.listdir(directory) if names.is_hidden(name)}
        except NotFound:
            return 0, 0
        base = directory.rstrip("/")
        removed = 0
        for name in discard:
            partial = names.partial_path(f"{base}/{name}")
            if partial.rsplit("/", 1)[-1] in hidden:
                # The resume record is the partial file's own attributes: it goes with it.
                api.unlink(partial)
                removed += 1
        kept = sum(1 for name in keep if names.partial_path(f"{base}/{name}").rsplit("/", 1)[-1] in hidden)
        return removed, kept

    def set_metadata(self, path: str, *, mode: int | None = None, mtime_ns: int | None = None) -> None:
        """Permission bits through ``hpss_Chmod``, the time through ``hpss_Utime``
        (whole seconds, HPSS's resolution).  Each call returns once the name
        server committed it."""
        self._login()
        if mode is not None:
            api.chmod(path, stat_mod.S_IMODE(mode))
        if mtime_ns is not None:
            api.utime(path, mtime_ns // 1_000_000_000)

    def mkdir(self, path: str) -> None:
        self._login()
        api.mkdir(path)

    def rmdir(self, path: str) -> None:
        self._login()
        api.rmdir(path)

    def remove(self, path: str) -> None:
        self._login()
        api.unlink(path)

    def rename(self, src: str, dst: str) -> None:
        self._login()
        api.rename(src, dst)


def _info(path: str, st: api.Stat) -> ObjectInfo:
    return ObjectInfo(
        path=path,
        size=st.size,
        mtime_ns=st.mtime * 1_000_000_000,
        is_dir=stat_mod.S_ISDIR(st.mode),
        identity=f"hpss:{st.ino}",
        mode=stat_mod.S_IMODE(st.mode),
    )


@functools.cache
def _user() -> str:
    # asked at every call that logs in (once per file): the password database read once
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):
        return "hpss"
