"""Holding a driver's write system call after the kernel has taken the bytes, before it returns.

The ``concurrency`` clause asks whether ``durable()`` can report a range
whose ``write()`` has not returned.  A driver that counts a range as written
before its ``pwrite`` finishes is wrong only for the microseconds the call
takes, so a race between threads rarely shows it.  Holding the call makes the
window as long as the kit wants: once armed, the next write system call to a
regular file (``write``, ``pwrite``, ``writev``, ``pwritev`` and their 64-bit
and ``v2`` forms) completes in the kernel and then waits until the kit
releases it, and ``durable()`` runs meanwhile.

Two ways to hold, tried in this order:

* :func:`build_shim`: a small C library compiled with ``gcc`` on first use
  and preloaded (``LD_PRELOAD``) into the child process that runs the writer.
  It wraps the C library's calls, so it holds a driver written in C or
  through ``cffi`` too.
* :class:`PythonHold`: wraps the functions of :mod:`os` in the child before
  the driver is imported, for machines without ``gcc``.  It sees only writes
  made through :mod:`os`.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import stat
import subprocess
import tempfile
import threading
from collections.abc import Callable
from typing import Any, Protocol

#: The preloaded library's source (the kit's own, compiled where it runs).
SOURCE = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;
static int armed, held, released;

static void deadline_in(struct timespec *ts, double seconds) {
    clock_gettime(CLOCK_REALTIME, ts);
    long long ns = ts->tv_nsec + (long long)(seconds * 1e9);
    ts->tv_sec += ns / 1000000000LL;
    ts->tv_nsec = ns % 1000000000LL;
}

void tc_hold_arm(void) {
    pthread_mutex_lock(&lock);
    armed = 1; held = 0; released = 0;
    pthread_mutex_unlock(&lock);
}

int tc_hold_wait(double seconds) {
    struct timespec ts;
    int rc = 0, out;
    deadline_in(&ts, seconds);
    pthread_mutex_lock(&lock);
    while (!held && rc != ETIMEDOUT) rc = pthread_cond_timedwait(&changed, &lock, &ts);
    out = held;
    pthread_mutex_unlock(&lock);
    return out;
}

void tc_hold_release(void) {
    pthread_mutex_lock(&lock);
    released = 1; armed = 0;
    pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&lock);
}

/* After a successful write to a regular file while armed: wait (at most 60 s) for the release. */
static void hold_after(int fd) {
    struct stat st;
    struct timespec ts;
    int saved = errno, rc = 0;
    pthread_mutex_lock(&lock);
    if (armed && fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
        armed = 0; held = 1;
        pthread_cond_broadcast(&changed);
        deadline_in(&ts, 60.0);
        while (!released && rc != ETIMEDOUT) rc = pthread_cond_timedwait(&changed, &lock, &ts);
    }
    pthread_mutex_unlock(&lock);
    errno = saved;
}

#define WRAP(ret, name, params, args)                                  \
    ret name params {                                                  \
        static ret (*real) params;                                     \
        if (!real) real = (ret (*) params)dlsym(RTLD_NEXT, #name);     \
        ret r = real args;                                             \
        if (r > 0) hold_after(fd);                                     \
        return r;                                                      \
    }

WRAP(ssize_t, write, (int fd, const void *b, size_t n), (fd, b, n))
WRAP(ssize_t, pwrite, (int fd, const void *b, size_t n, off_t o), (fd, b, n, o))
WRAP(ssize_t, pwrite64, (int fd, const void *b, size_t n, off64_t o), (fd, b, n, o))
WRAP(ssize_t, writev, (int fd, const struct iovec *v, int c), (fd, v, c))
WRAP(ssize_t, pwritev, (int fd, const struct iovec *v, int c, off_t o), (fd, v, c, o))
WRAP(ssize_t, pwritev64, (int fd, const struct iovec *v, int c, off64_t o), (fd, v, c, o))
WRAP(ssize_t, pwritev2, (int fd, const struct iovec *v, int c, off_t o, int f), (fd, v, c, o, f))
WRAP(ssize_t, pwritev64v2, (int fd, const struct iovec *v, int c, off64_t o, int f), (fd, v, c, o, f))
"""

#: Names of the environment variable that tells the child which library is preloaded.
SHIM_ENV = "TRANSFERCORE_KIT_HOLD_SHIM"


def build_shim() -> tuple[str | None, str]:
    """The compiled library's path (built once per user and source into the temporary
    directory), or ``None`` and why it could not be built."""
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        return None, "no C compiler (gcc) on PATH"
    digest = hashlib.sha256(SOURCE.encode()).hexdigest()[:16]
    directory = os.path.join(tempfile.gettempdir(), f"transfercore-kit-{os.getuid()}")
    os.makedirs(directory, mode=0o700, exist_ok=True)
    st = os.stat(directory)
    if st.st_uid != os.getuid() or stat.S_IMODE(st.st_mode) & 0o022:
        return None, f"{directory} is not private to this user"
    library = os.path.join(directory, f"holdwrite-{digest}.so")
    if os.path.exists(library):
        return library, ""
    with tempfile.TemporaryDirectory(dir=directory) as work:
        source = os.path.join(work, "holdwrite.c")
        with open(source, "w", encoding="utf-8") as f:
            f.write(SOURCE)
        built = os.path.join(work, "holdwrite.so")
        proc = subprocess.run(
            [compiler, "-shared", "-fPIC", "-O1", "-o", built, source, "-ldl", "-lpthread"],
            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
        )
        if proc.returncode != 0:
            return None, f"{compiler} failed: {proc.stderr.strip()[-500:]}"
        os.replace(built, library)
    return library, ""


class Hold(Protocol):
    """Arm, wait for and release one held write."""

    def arm(self) -> None: ...

    def wait(self, seconds: float) -> bool: ...

    def release(self) -> None: ...


class ShimHold:
    """The preloaded C library, reached through ``ctypes`` (its calls release the GIL)."""

    def __init__(self, library: str) -> None:
        self._lib = ctypes.CDLL(library)
        self._lib.tc_hold_wait.argtypes = [ctypes.c_double]
        self._lib.tc_hold_wait.restype = ctypes.c_int

    def arm(self) -> None:
        self._lib.tc_hold_arm()

    def wait(self, seconds: float) -> bool:
        return bool(self._lib.tc_hold_wait(seconds))

    def release(self) -> None:
        self._lib.tc_hold_release()


class PythonHold:
    """The same hold around the write functions of :mod:`os`; install it before the driver is imported."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._armed = False
        self._held = threading.Event()
        self._released = threading.Event()
        for name in ("write", "pwrite", "writev", "pwritev"):
            real = getattr(os, name, None)
            if real is not None:
                setattr(os, name, self._wrap(real))

    def _wrap(self, real: Callable[..., int]) -> Callable[..., int]:
        def held_write(fd: int, *args: Any) -> int:
            result = real(fd, *args)
            if result > 0:
                self._after(fd)
            return result

        return held_write

    def _after(self, fd: int) -> None:
        with self._lock:
            if not self._armed:
                return
            try:
                regular = stat.S_ISREG(os.fstat(fd).st_mode)
            except OSError:
                regular = False
            if not regular:
                return
            self._armed = False
        self._held.set()
        self._released.wait(60)

    def arm(self) -> None:
        with self._lock:
            self._held.clear()
            self._released.clear()
            self._armed = True

    def wait(self, seconds: float) -> bool:
        return self._held.wait(seconds)

    def release(self) -> None:
        with self._lock:
            self._armed = False
        self._released.set()
