"""cffi build script (API mode) for the HPSS client API.

With ``HPSS_ROOT`` set, the extension is compiled against that HPSS
installation (``$HPSS_ROOT/include/hpss_api.h``, ``$HPSS_ROOT/lib/libhpss``);
otherwise the emulator's C sources under ``emulator/`` are compiled into the
extension.  Either way the C compiler reads the header, so struct layouts and
constant values come from it: the ``cdef`` below only names what the driver
uses, with ``...`` wherever the header decides.

Extra settings for a real installation (see README.md):
``HPSS_CFLAGS`` (extra compiler flags, space-separated), ``HPSS_LIBS``
(libraries to link instead of ``hpss``), ``HPSS_LIBDIR`` (default
``$HPSS_ROOT/lib``), ``HPSS_INCLUDEDIR`` (default ``$HPSS_ROOT/include``).
"""

from __future__ import annotations

import os
import shlex

from cffi import FFI

CDEF = r"""
typedef uint64_t u_signed64;
typedef uint32_t unsigned32;
typedef int32_t signed32;
typedef int... mode_t;

#define HPSS_E_NOERROR ...
#define HPSS_EINVAL ...
#define HPSS_EIO ...
#define HPSS_EFAULT ...
#define HPSS_ECONN ...
#define HPSS_EOM ...

typedef int... hpss_authn_mech_t;
typedef int... hpss_rpc_cred_type_t;
typedef int... hpss_rpc_auth_type_t;
#define hpss_authn_mech_unix ...
#define hpss_authn_mech_krb5 ...
#define hpss_rpc_cred_client ...
#define hpss_rpc_auth_type_keytab ...
#define hpss_rpc_auth_type_passwd ...

int hpss_SetLoginCred(char *PrincipalName, hpss_authn_mech_t Mechanism,
                      hpss_rpc_cred_type_t CredType, hpss_rpc_auth_type_t AuthType,
                      void *Authenticator);
char *hpss_BuildLevelString(void);

typedef int... hpss_cos_priority_t;
#define LOWEST_PRIORITY ...
#define NO_PRIORITY ...
typedef struct { u_signed64 MinFileSize; u_signed64 MaxFileSize; unsigned32 StripeWidth; ...; } hpss_cos_hints_t;
typedef struct { hpss_cos_priority_t MinFileSizePriority; hpss_cos_priority_t MaxFileSizePriority; ...; }
    hpss_cos_priorities_t;

/* The types of st_ino and of the times are the header's (see SHIMS). */
typedef int... tc_ino_t;
typedef int... tc_time_t;
typedef struct { u_signed64 st_size; unsigned32 st_mode; tc_ino_t st_ino; tc_time_t hpss_st_mtime; ...; }
    hpss_stat_t;

int hpss_Open(const char *Path, int Oflag, mode_t Mode, const hpss_cos_hints_t *HintsIn,
              const hpss_cos_priorities_t *HintsPri, hpss_cos_hints_t *HintsOut);
int hpss_Close(int Fildes);
int hpss_Stat(const char *Path, hpss_stat_t *Buf);
int hpss_Lstat(const char *Path, hpss_stat_t *Buf);
int hpss_Unlink(const char *Path);
int hpss_Rename(const char *Old, const char *New);
int hpss_Mkdir(const char *Path, mode_t Mode);
int hpss_Rmdir(const char *Path);
int hpss_Chmod(const char *Path, mode_t Mode);
int tc_Utime(const char *Path, long long Mtime);

/* Serial reads on a descriptor of their own (the read-back beside PIO). */
#define SEEK_SET ...
#define HPSS_SET_OFFSET_FORWARD ...
int hpss_SetFileOffset(int Fildes, u_signed64 OffsetIn, int SeekFlag, int Direction, u_signed64 *OffsetOut);
ssize_t hpss_Read(int Fildes, void *Buf, size_t Nbyte);

#define HPSS_MAX_FILE_NAME ...
typedef struct { unsigned32 d_namelen; char d_name[]; ...; } hpss_dirent_t;
int hpss_Opendir(const char *DirName);
int hpss_Readdir(int Dirdes, hpss_dirent_t *DirentPtr);
int hpss_Closedir(int Dirdes);

#define UDA_API_VALUE ...
typedef struct { char *Key; char *Value; } hpss_userattr_t;
typedef struct { signed32 len; hpss_userattr_t *Pair; ...; } hpss_userattr_list_t;
int hpss_UserAttrSetAttrs(const char *Path, const hpss_userattr_list_t *Attr, const char *Schema);
int hpss_UserAttrGetAttrs(const char *Path, hpss_userattr_list_t *Attr, int XMLFlag, int XMLSize);
int hpss_UserAttrDeleteAttrs(const char *Path, hpss_userattr_list_t *Attr, char *Schema);

typedef int... hpss_pio_operation_t;
typedef int... hpss_pio_transport_t;
#define HPSS_PIO_READ ...
#define HPSS_PIO_WRITE ...
#define HPSS_PIO_TCPIP ...
typedef struct {
    hpss_pio_operation_t Operation;
    unsigned32 ClntStripeWidth;
    unsigned32 BlockSize;
    unsigned32 FileStripeWidth;
    unsigned32 IOTimeOutSecs;
    hpss_pio_transport_t Transport;
    unsigned32 Options;
    ...;
} hpss_pio_params_t;
typedef struct { u_signed64 Offset; u_signed64 Length; ...; } hpss_pio_gapinfo_t;
typedef struct { ...; } hpss_sockaddr_t;
/* The group handle's representation is the header's business: Python only
 * holds pointers to it, and the by-value calls go through the shims below. */
typedef ... hpss_pio_grp_t;
typedef int (*hpss_pio_cb_t)(void *arg, u_signed64 offset, unsigned int *length, void **buffer);

int hpss_PIOStart(hpss_pio_params_t *InputParams, hpss_pio_grp_t *StripeGroup);
int hpss_PIOImportGrp(const void *Buffer, unsigned int BufLength, hpss_pio_grp_t *StripeGroup);
hpss_pio_grp_t *tc_pio_grp_new(void);
int tc_PIOExportGrp(const hpss_pio_grp_t *StripeGroup, void **Buffer, unsigned int *BufLength);
int tc_PIORegister(unsigned32 StripeElement, void *DataBuffer, unsigned32 DataBufLen,
                   hpss_pio_grp_t *StripeGroup, hpss_pio_cb_t IOCallback, void *IOCallbackArg);
int tc_PIOExecute(int Fd, u_signed64 FileOffset, u_signed64 Size, hpss_pio_grp_t *StripeGroup,
                  hpss_pio_gapinfo_t *GapInfo, u_signed64 *BytesMoved);
int tc_PIOEnd(hpss_pio_grp_t *StripeGroup);

void free(void *);
/* memcpy with the interpreter lock released (cffi releases it around every call):
 * the staging copies of a block ran under it and stalled the data connections. */
void tc_copy(void *dst, const void *src, size_t n);

/* Which backend this extension was built against: "hpss" or "emulator". */
const char *tc_hpss_backend(void);

extern "Python" int _tc_pio_callback(void *, u_signed64, unsigned int *, void **);
"""

SHIMS = r"""
#include <hpss_api.h>
#include <stdlib.h>
#include <fcntl.h>
#include <unistd.h>
#include <string.h>

typedef __typeof__(((hpss_stat_t *)0)->st_ino) tc_ino_t;
typedef __typeof__(((hpss_stat_t *)0)->hpss_st_mtime) tc_time_t;

/* hpss_Utime takes a struct utimbuf: both times set to one value. */
static int tc_Utime(const char *Path, long long Mtime)
{ struct utimbuf t; t.actime = (time_t)Mtime; t.modtime = (time_t)Mtime; return hpss_Utime(Path, &t); }

static hpss_pio_grp_t *tc_pio_grp_new(void) { return calloc(1, sizeof(hpss_pio_grp_t)); }
static int tc_PIOExportGrp(const hpss_pio_grp_t *g, void **buf, unsigned int *len)
{ return hpss_PIOExportGrp(*g, buf, len); }
static int tc_PIORegister(unsigned32 elem, void *buf, unsigned32 len, hpss_pio_grp_t *g,
                          hpss_pio_cb_t cb, void *arg)
{ return hpss_PIORegister(elem, NULL, buf, len, *g, cb, arg); }
static int tc_PIOExecute(int fd, u_signed64 off, u_signed64 size, hpss_pio_grp_t *g,
                         hpss_pio_gapinfo_t *gap, u_signed64 *moved)
{ return hpss_PIOExecute(fd, off, size, *g, gap, moved); }
static int tc_PIOEnd(hpss_pio_grp_t *g) { return hpss_PIOEnd(*g); }
static void tc_copy(void *dst, const void *src, size_t n) { memcpy(dst, src, n); }
"""

_HERE = os.path.dirname(os.path.abspath(__file__))


def _relative(path: str) -> str:
    # setuptools wants sources relative to the project directory.
    return os.path.relpath(os.path.join(_HERE, path), os.getcwd())


def make_builder() -> FFI:
    ffi = FFI()
    ffi.cdef(CDEF)
    root = os.environ.get("HPSS_ROOT", "").strip()
    prelude = SHIMS
    if root:
        include_dir = os.environ.get("HPSS_INCLUDEDIR") or os.path.join(root, "include")
        lib_dir = os.environ.get("HPSS_LIBDIR") or os.path.join(root, "lib")
        libraries = shlex.split(os.environ.get("HPSS_LIBS", "hpss"))
        ffi.set_source(
            "transfercore_hpss._hpss",
            prelude + 'static const char *tc_hpss_backend(void) { return "hpss"; }\n',
            include_dirs=[include_dir],
            library_dirs=[lib_dir],
            runtime_library_dirs=[lib_dir],
            libraries=libraries,
            extra_compile_args=shlex.split(os.environ.get("HPSS_CFLAGS", "")),
        )
    else:
        sources = [_relative(f"emulator/src/{name}") for name in ("emu_config.c", "emu_fs.c", "emu_pio.c")]
        ffi.set_source(
            "transfercore_hpss._hpss",
            prelude + 'static const char *tc_hpss_backend(void) { return "emulator"; }\n',
            sources=sources,
            include_dirs=[os.path.join(_HERE, "emulator", "include")],
            libraries=["pthread"],
            extra_compile_args=["-O2"],
        )
    return ffi


ffibuilder = make_builder()

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
