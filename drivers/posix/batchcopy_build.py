"""cffi build script (API mode) for the batch copy of small files
(``transfercore_posix/batchcopy.c``), compiled when the driver is installed."""

from __future__ import annotations

import os

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join("transfercore_posix", "batchcopy.c")

CDEF = r"""
typedef struct {
    const char *src;
    const char *partial;
    const char *final;
    const char *dir;
    int64_t size;
    int64_t mtime_ns;
    uint64_t dev;
    uint64_t ino;
    uint32_t mode;
    int stage;
    int err;
    uint32_t crc;
    uint32_t got_crc;
    uint64_t dst_dev;
    uint64_t dst_ino;
    int64_t dst_mtime_ns;
    int64_t dst_ctime_ns;
    int fd;
    int covered;
    int dir_synced;
    int dirfd;
    const char *partial_name;
    const char *final_name;
} tc_item;

#define TC_OK ...
#define TC_SOURCE ...
#define TC_CHANGED ...
#define TC_DEST ...
#define TC_SYNC ...
#define TC_VERIFY ...
#define TC_MISMATCH ...
#define TC_PUBLISH ...
#define TC_DIRSYNC ...

uint32_t tc_crc32c(uint32_t crc, const unsigned char *p, size_t n);
int tc_crc32c_hardware(void);
int tc_bind_paths(tc_item *items, int n, const char *strings, size_t len);
int tc_copy_batch(tc_item *items, int n, int use_syncfs, int verify, int64_t drop_from);
"""

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source(
    "transfercore_posix._batchcopy",
    '#include "batchcopy.h"',
    sources=[SRC],
    include_dirs=[os.path.join(HERE, "transfercore_posix")],
    extra_compile_args=["-O2"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
