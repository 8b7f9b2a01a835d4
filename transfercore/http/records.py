"""The durable record of each upload: id -> destination, length, owner, accepted offset.

One small JSON file per upload, written to a fresh name, fsynced, renamed
over the old one, the directory fsynced: a record survives a crash of the
process and of the host, and is never seen half written.  Saves running at
once share their directory fsyncs (:class:`GroupSync`): each waits for one
that began after its rename, so every save still returns durable.  The record holds
the offset the server last *acknowledged*; the storage's own partial state
is still the authority for what is there (see :func:`.protocol.offset_of`).
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import attrs

from ..driverkit import fsync_dir
from ..errors import from_oserror
from .protocol import UploadRecord

_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


def valid_id(upload_id: str) -> bool:
    return bool(_ID.match(upload_id))


class GroupSync:
    """``fsync`` of one directory shared by the threads that ask for it at once (a group commit).

    A caller's names are durable once an fsync that *started after* its call
    returns: while one runs, later callers wait and the next fsync covers them
    all, so 200 records saved at once cost a few directory fsyncs, not 200.
    """

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self._cond = threading.Condition()
        self._asked = 0  # tickets handed out
        self._done = 0  # every ticket up to this one is covered by a finished fsync
        self._running = False

    def sync(self) -> None:
        with self._cond:
            self._asked += 1
            ticket = self._asked
            while self._done < ticket:
                if self._running:
                    self._cond.wait()
                    continue
                self._running = True
                covers = self._asked  # every ticket handed out before this fsync begins
                self._cond.release()
                try:
                    fsync_dir(self.directory)
                finally:
                    self._cond.acquire()
                    self._running = False
                    self._cond.notify_all()
                self._done = max(self._done, covers)


class RecordStore:
    """Upload records in one directory."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self._dir_sync = GroupSync(str(self.directory))
        missing = [d for d in (self.directory, *self.directory.parents) if not d.exists()]
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        # a directory made here must survive a power cut with the records in it: its name too
        for made in reversed(missing):
            fsync_dir(str(made.parent))

    def _path(self, upload_id: str) -> Path:
        return self.directory / f"{upload_id}.json"

    def load(self, upload_id: str) -> UploadRecord | None:
        if not valid_id(upload_id):
            return None
        try:
            data = json.loads(self._path(upload_id).read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return None
        try:
            return UploadRecord(**data)
        except TypeError:
            return None

    def save(self, record: UploadRecord) -> None:
        path = self._path(record.id)
        tmp = path.with_name(f".{record.id}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            with open(tmp, "w") as f:
                json.dump(attrs.asdict(record), f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
            self._sync_dir()
        except OSError as exc:
            raise from_oserror(exc, "cannot save the upload record") from exc

    def remove(self, upload_id: str) -> None:
        for leftover in self.directory.glob(f".{upload_id}.*.tmp"):  # a save a crash interrupted
            leftover.unlink(missing_ok=True)
        try:
            self._path(upload_id).unlink()
        except FileNotFoundError:
            return
        self._sync_dir()

    def all(self) -> Iterator[UploadRecord]:
        for entry in sorted(self.directory.glob("*.json")):
            record = self.load(entry.stem)
            if record is not None:
                yield record

    def _sync_dir(self) -> None:
        self._dir_sync.sync()
