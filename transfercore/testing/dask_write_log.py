"""Dask worker preload for the scale-out tests and benchmarks: every ``PosixWriter.write``
is logged (pid, path, offset, length) to the file named by
``TRANSFERCORE_WRITE_LOG`` before it runs, so the bytes a worker wrote are
known even after it was SIGKILLed (logging first can only overcount)."""

import os

from transfercore_posix.writer import PosixWriter


def _install() -> None:
    if getattr(PosixWriter.write, "logged", False):
        return  # Dask may load a preload more than once
    fd = os.open(os.environ["TRANSFERCORE_WRITE_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    write = PosixWriter.write

    def logged(self, offset, data):  # type: ignore[no-untyped-def]
        os.write(fd, f"{os.getpid()} {offset} {memoryview(data).nbytes} {self._display}\n".encode())
        return write(self, offset, data)

    logged.logged = True  # type: ignore[attr-defined,unused-ignore]
    PosixWriter.write = logged  # type: ignore[method-assign,unused-ignore]


_install()
