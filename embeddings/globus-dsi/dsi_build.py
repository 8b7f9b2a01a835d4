"""Build ``libglobus_gridftp_server_transfercore.so`` with cffi's embedding mode.

The module embeds the Python that runs this build (``sys.executable``): it
links that interpreter's shared libpython, records its run path, and at run
time configures the interpreter as if that executable had been started, so a
virtual environment's ``site-packages`` (where transfercore and the drivers
are installed) is found without help.  ``_buildinfo.py`` beside the module
records these facts for ``transfercore globus-server --site-config``.

Needs the Globus server headers (Debian: ``libglobus-gridftp-server-dev``),
the headers of this Python (``python3-dev`` for Debian's) and a C compiler.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
MODULE = "libglobus_gridftp_server_transfercore"
#: what the daemon execs per connection when warm session processes wait (csrc/warm_exec.c)
EXEC = "transfercore-dsi-exec"

CDEF = r"""
typedef uint32_t globus_result_t;
typedef int64_t globus_off_t;
typedef size_t globus_size_t;
typedef int globus_bool_t;
typedef unsigned char globus_byte_t;
typedef long globus_time_t;
typedef int... time_t;
typedef struct globus_l_gfs_data_operation_s * globus_gfs_operation_t;
typedef struct globus_l_range_list_s * globus_range_list_t;
typedef void (*globus_callback_func_t)(void *);

#define GLOBUS_SUCCESS ...
#define GLOBUS_GFS_CMD_MKD ...
#define GLOBUS_GFS_CMD_RMD ...
#define GLOBUS_GFS_CMD_DELE ...
#define GLOBUS_GFS_CMD_RNTO ...
#define GLOBUS_GFS_CMD_CKSM ...
#define GLOBUS_GFS_CMD_SITE_CHMOD ...
#define GLOBUS_GFS_CMD_SITE_UTIME ...
#define GLOBUS_GFS_CMD_SITE_CHGRP ...
#define GLOBUS_GFS_CMD_TRNC ...
#define GLOBUS_GFS_LOG_ERR ...
#define GLOBUS_GFS_LOG_WARN ...
#define GLOBUS_GFS_LOG_INFO ...

typedef struct {
    char *username;
    ...;
} globus_gfs_session_info_t;

typedef struct {
    globus_bool_t file_only;
    char *pathname;
    globus_bool_t use_symlink_info;
    globus_bool_t include_path_stat;
    ...;
} globus_gfs_stat_info_t;

typedef struct {
    int command;
    char *pathname;
    globus_off_t cksm_offset;
    globus_off_t cksm_length;
    char *cksm_alg;
    int chmod_mode;
    char *from_pathname;
    time_t utime_time;
    ...;
} globus_gfs_command_info_t;

typedef struct {
    char *pathname;
    char *module_name;
    char *module_args;
    globus_off_t partial_offset;
    globus_off_t partial_length;
    globus_range_list_t range_list;
    globus_bool_t truncate;
    int eof_count;
    globus_off_t alloc_size;
    char *expected_checksum;
    char *expected_checksum_alg;
    ...;
} globus_gfs_transfer_info_t;

typedef struct {
    int mode;
    int nlink;
    char *name;
    char *symlink_target;
    int uid;
    int gid;
    globus_off_t size;
    globus_time_t atime;
    globus_time_t ctime;
    globus_time_t mtime;
    int dev;
    int ino;
    ...;
} globus_gfs_stat_t;

typedef void (*globus_gridftp_server_write_cb_t)(globus_gfs_operation_t, globus_result_t,
    globus_byte_t *, globus_size_t, void *);
typedef void (*globus_gridftp_server_read_cb_t)(globus_gfs_operation_t, globus_result_t,
    globus_byte_t *, globus_size_t, globus_off_t, globus_bool_t, void *);

void globus_gridftp_server_finished_session_start(globus_gfs_operation_t, globus_result_t,
    void *, char *, char *);
void globus_gridftp_server_finished_command(globus_gfs_operation_t, globus_result_t, char *);
void globus_gridftp_server_finished_stat(globus_gfs_operation_t, globus_result_t,
    globus_gfs_stat_t *, int);
void globus_gridftp_server_begin_transfer(globus_gfs_operation_t, int, void *);
void globus_gridftp_server_finished_transfer(globus_gfs_operation_t, globus_result_t);
globus_result_t globus_gridftp_server_register_read(globus_gfs_operation_t, globus_byte_t *,
    globus_size_t, globus_gridftp_server_read_cb_t, void *);
globus_result_t globus_gridftp_server_register_write(globus_gfs_operation_t, globus_byte_t *,
    globus_size_t, globus_off_t, int, globus_gridftp_server_write_cb_t, void *);
void globus_gridftp_server_update_bytes_recvd(globus_gfs_operation_t, globus_off_t);
void globus_gridftp_server_update_range_recvd(globus_gfs_operation_t, globus_off_t, globus_off_t);
void globus_gridftp_server_get_optimal_concurrency(globus_gfs_operation_t, int *);
void globus_gridftp_server_get_block_size(globus_gfs_operation_t, globus_size_t *);
void globus_gridftp_server_get_read_range(globus_gfs_operation_t, globus_off_t *, globus_off_t *);
void globus_gridftp_server_get_write_range(globus_gfs_operation_t, globus_off_t *, globus_off_t *);
void globus_gridftp_server_set_ordered_data(globus_gfs_operation_t, globus_bool_t);
void globus_gridftp_server_get_config_string(globus_gfs_operation_t, char **);
void globus_gridftp_server_get_update_interval(globus_gfs_operation_t, int *);

int globus_range_list_size(globus_range_list_t);
int globus_range_list_at(globus_range_list_t, int, globus_off_t *, globus_off_t *);

void free(void *);

/* helpers in csrc/dsi_glue.c */
globus_result_t tc_error(int code, const char *error_code, const char *message);
void tc_result_text(globus_result_t result, char *buf, size_t len);
void tc_server_log(int type, const char *message);
int tc_will_block(void);
const char *tc_log_path(void);
double tc_python_start_seconds(void);
globus_result_t tc_periodic_start(double, globus_callback_func_t, void *, int *);
globus_result_t tc_periodic_stop(int, globus_callback_func_t, void *);

/* the upload data path in C (csrc/dsi_glue.c) */
typedef struct tc_sink tc_sink_t;
tc_sink_t *tc_sink_new(globus_gfs_operation_t, int, globus_off_t, void *);
int tc_sink_claim(tc_sink_t *, globus_off_t, globus_off_t);
void tc_sink_start(tc_sink_t *, int, globus_size_t, double);
int tc_sink_has_timer(tc_sink_t *);
void tc_sink_report(tc_sink_t *, int);
int tc_sink_queue(tc_sink_t *, globus_off_t, globus_off_t);
int tc_sink_written(tc_sink_t *, globus_off_t *, int);
void tc_sink_stats(tc_sink_t *, globus_off_t *, long *, double *, int *, char *, size_t);
int tc_sink_kick(tc_sink_t *);
void tc_sink_release(tc_sink_t *);

extern "Python+C" void tc_py_session_start(globus_gfs_operation_t, globus_gfs_session_info_t *);
extern "Python+C" void tc_py_session_stop(void *);
extern "Python+C" void tc_py_stat(globus_gfs_operation_t, globus_gfs_stat_info_t *, void *);
extern "Python+C" void tc_py_command(globus_gfs_operation_t, globus_gfs_command_info_t *, void *);
extern "Python+C" void tc_py_recv(globus_gfs_operation_t, globus_gfs_transfer_info_t *, void *);
extern "Python+C" void tc_py_send(globus_gfs_operation_t, globus_gfs_transfer_info_t *, void *);
extern "Python" void tc_py_read_cb(globus_gfs_operation_t, globus_result_t, globus_byte_t *,
    globus_size_t, globus_off_t, globus_bool_t, void *);
extern "Python" void tc_py_write_cb(globus_gfs_operation_t, globus_result_t, globus_byte_t *,
    globus_size_t, void *);
extern "Python" void tc_py_report_cb(void *);
extern "Python+C" void tc_py_report_stopped(void *);
extern "Python+C" void tc_py_sink_done(void *);
extern "Python+C" void tc_py_warm(void);
double tc_warm_waited(void);
"""

# Runs in the embedded interpreter the first time the server calls the module.
INIT_CODE = r"""
import gc, time
_t0 = time.perf_counter()
# Start-up creates objects that live as long as the process: no collection while it runs
# (the bridge freezes them out of the collector and turns it back on once the session started).
gc.disable()
from libglobus_gridftp_server_transfercore import ffi, lib
try:
    from transfercore_globus_dsi import bridge
    bridge.install(ffi, lib, import_seconds=time.perf_counter() - _t0)
except BaseException as _exc:
    # Without the Python part no entry point exists and every session would hang:
    # log why, and refuse sessions with the reason instead.
    import os, traceback
    _reason = f"the transfercore DSI cannot load its Python part: {type(_exc).__name__}: {_exc}"
    try:
        with open(ffi.string(lib.tc_log_path()).decode() or os.devnull, "a") as _fh:
            _fh.write(time.strftime("%Y-%m-%dT%H:%M:%S") + f" {os.getpid()} ERROR {_reason}\n")
            _fh.write(traceback.format_exc())
    except OSError:
        pass
    lib.tc_server_log(lib.GLOBUS_GFS_LOG_ERR, " ".join(_reason.split()).encode("utf-8", "replace"))
    _message = " ".join(_reason.split()).encode("utf-8", "replace")

    @ffi.def_extern()
    def tc_py_session_start(op, info):
        lib.globus_gridftp_server_finished_session_start(
            op, lib.tc_error(451, b"DSI_PYTHON", _message), ffi.NULL, ffi.NULL, ffi.NULL)
"""


def _pkg_config(*args: str) -> list[str]:
    if shutil.which("pkg-config") is None:
        return []
    proc = subprocess.run(["pkg-config", *args, "globus-gridftp-server"], capture_output=True, text=True)
    return shlex.split(proc.stdout) if proc.returncode == 0 else []


def python_facts() -> dict[str, str]:
    """What the module records about the Python it embeds."""
    if not sysconfig.get_config_var("Py_ENABLE_SHARED"):
        raise SystemExit(
            f"transfercore-globus-dsi: {sys.executable} has no shared libpython, so it cannot be "
            "embedded in the GridFTP server; build with a Python configured --enable-shared "
            "(Debian's /usr/bin/python3 with python3-dev is)"
        )
    return {
        "executable": os.path.abspath(sys.executable),
        "libpython": str(sysconfig.get_config_var("INSTSONAME") or sysconfig.get_config_var("LDLIBRARY")),
        "libdir": str(sysconfig.get_config_var("LIBDIR")),
        "version": sys.version.split()[0],
        "prefix": sys.prefix,
        "base_prefix": sys.base_prefix,
    }


def make_ffi(facts: dict[str, str]) -> FFI:
    ffi = FFI()
    ffi.embedding_api("")
    ffi.cdef(CDEF)
    with open(os.path.join(HERE, "csrc", "dsi_glue.c"), encoding="utf-8") as fh:
        glue = fh.read()
    include = [flag[2:] for flag in _pkg_config("--cflags-only-I") if flag.startswith("-I")] or [
        "/usr/include/globus"
    ]
    libdir = facts["libdir"]
    link = [f"-Wl,-rpath,{libdir}"] if libdir not in ("/usr/lib", "/usr/lib64", "/lib") else []
    ffi.set_source(
        MODULE,
        glue,
        include_dirs=include,
        libraries=["globus_gridftp_server", "globus_common", "dl"],
        library_dirs=[libdir],
        extra_link_args=link,
        define_macros=[
            ("TC_PYTHON_EXECUTABLE", '"' + facts["executable"].replace('"', '\\"') + '"'),
            ("TC_LIBPYTHON", '"' + facts["libpython"] + '"'),
        ],
        extra_compile_args=["-Wno-unused-function"],
    )
    ffi.embedding_init_code(INIT_CODE)
    return ffi


def build_exec(target_dir: str) -> str:
    """Compile the per-connection hand-over program (plain C, no Globus or Python)."""
    cc = shlex.split(str(sysconfig.get_config_var("CC") or "cc"))
    final = os.path.join(target_dir, EXEC)
    with tempfile.TemporaryDirectory(prefix="tc-dsi-exec-") as tmp:
        out = os.path.join(tmp, EXEC)
        subprocess.run([*cc, "-O2", "-Wall", "-o", out, os.path.join(HERE, "csrc", "warm_exec.c")], check=True)
        shutil.copyfile(out, final)
    os.chmod(final, 0o755)
    return final


def build(target_dir: str) -> str:
    """Compile the module into ``target_dir``; return its path."""
    facts = python_facts()
    ffi = make_ffi(facts)
    os.makedirs(target_dir, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tc-dsi-build-") as tmp:
        built = ffi.compile(tmpdir=tmp, target=f"{MODULE}.so", verbose=False)
        final = os.path.join(target_dir, f"{MODULE}.so")
        shutil.copyfile(built, final)
        os.chmod(final, 0o755)
    build_exec(target_dir)
    with open(os.path.join(target_dir, "_buildinfo.py"), "w", encoding="utf-8") as fh:
        fh.write('"""Facts recorded when the DSI module was built (generated; do not edit)."""\n\n')
        fh.write(f"BUILD = {facts!r}\n")
    return final


if __name__ == "__main__":
    print(build(sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "transfercore_globus_dsi")))
