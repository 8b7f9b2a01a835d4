/*
 * The C half of the transfercore DSI: registers the storage interface with
 * the Globus GridFTP server, starts the Python interpreter the module was
 * built for, and forwards every interface call to Python.  Storage logic
 * lives in Python (transfercore_globus_dsi.bridge); this file only knows the
 * Globus calling conventions.
 *
 * Build-time facts come in as macros (see dsi_build.py):
 *   TC_PYTHON_EXECUTABLE  the interpreter whose environment is embedded
 *   TC_LIBPYTHON          libpython's soname, promoted to RTLD_GLOBAL
 */

#include <globus_gridftp_server.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Python entry points (extern "Python+C" in the cdef). */
void tc_py_session_start(globus_gfs_operation_t, globus_gfs_session_info_t *);
void tc_py_session_stop(void *);
void tc_py_stat(globus_gfs_operation_t, globus_gfs_stat_info_t *, void *);
void tc_py_command(globus_gfs_operation_t, globus_gfs_command_info_t *, void *);
void tc_py_recv(globus_gfs_operation_t, globus_gfs_transfer_info_t *, void *);
void tc_py_send(globus_gfs_operation_t, globus_gfs_transfer_info_t *, void *);

static pthread_mutex_t tc_start_lock = PTHREAD_MUTEX_INITIALIZER;
static int tc_python_state = 0;          /* 0 not tried, 1 running, -1 failed */
static char tc_start_error[2048] = "";
static char tc_log_file[4096] = "";
static double tc_python_seconds = 0.0;     /* Py_InitializeFromConfig, for the start-up log */

/* The bridge log: one file the operator can find, written a line at a time
 * (connection processes have stderr on /dev/null and the server's own log is
 * buffered).  Chosen once per session: "log=" in the DSI options, else
 * $TRANSFERCORE_DSI_LOG, else /tmp/transfercore-globus-dsi-<uid>.log. */
static void
tc_choose_log(const char *options)
{
    const char *p = options;
    const char *env;

    if (tc_log_file[0] != '\0')
        return;
    while (p != NULL && *p != '\0') {
        while (*p == ' ' || *p == '\t')
            p++;
        if (strncmp(p, "log=", 4) == 0) {
            size_t n = strcspn(p + 4, " \t");
            if (n > 0 && n < sizeof(tc_log_file)) {
                memcpy(tc_log_file, p + 4, n);
                tc_log_file[n] = '\0';
                return;
            }
        }
        p += strcspn(p, " \t");
    }
    env = getenv("TRANSFERCORE_DSI_LOG");
    if (env != NULL && *env != '\0' && strlen(env) < sizeof(tc_log_file)) {
        strcpy(tc_log_file, env);
        return;
    }
    snprintf(tc_log_file, sizeof(tc_log_file), "/tmp/transfercore-globus-dsi-%lu.log",
             (unsigned long) getuid());
}

const char *
tc_log_path(void)
{
    return tc_log_file;
}

double
tc_python_start_seconds(void)
{
    return tc_python_seconds;
}

/* Before Python runs: the bridge log and the server's log. */
static void
tc_c_log(const char *fmt, ...)
{
    char line[2048];
    char stamp[64];
    time_t now = time(NULL);
    struct tm tm;
    va_list ap;
    FILE *fh;

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    globus_gfs_log_message(GLOBUS_GFS_LOG_ERR, "transfercore DSI: %s\n", line);
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
    fh = fopen(tc_log_file[0] ? tc_log_file : "/dev/null", "a");
    if (fh != NULL) {
        fprintf(fh, "%s %d ERROR %s\n", stamp, (int) getpid(), line);
        fclose(fh);
    }
}

/* Start the interpreter once per process.  It is configured as if the
 * recorded executable had been run, so a virtual environment's pyvenv.cfg and
 * site-packages are found exactly as by that interpreter. */
static int
tc_start_python(void)
{
    PyStatus status;
    PyConfig config;
    const char *exe;
    void *handle;

    pthread_mutex_lock(&tc_start_lock);
    if (tc_python_state != 0) {
        pthread_mutex_unlock(&tc_start_lock);
        return tc_python_state;
    }
    if (Py_IsInitialized()) {
        tc_python_state = 1;
        pthread_mutex_unlock(&tc_start_lock);
        return 1;
    }
    /* libltdl opened this module RTLD_LOCAL, so libpython's symbols are not
     * visible to the extension modules Python will import (_cffi_backend,
     * drivers' cffi modules): make them global. */
    handle = dlopen(TC_LIBPYTHON, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD);
    if (handle == NULL) {
        snprintf(tc_start_error, sizeof(tc_start_error),
                 "cannot promote %s to RTLD_GLOBAL: %s", TC_LIBPYTHON, dlerror());
        goto fail;
    }
    exe = getenv("TRANSFERCORE_DSI_PYTHON");
    if (exe == NULL || *exe == '\0')
        exe = TC_PYTHON_EXECUTABLE;
    if (access(exe, X_OK) != 0) {
        snprintf(tc_start_error, sizeof(tc_start_error),
                 "the Python executable %s is missing or not executable by uid %lu "
                 "(reinstall transfercore-globus-dsi from the environment that should serve, "
                 "or set TRANSFERCORE_DSI_PYTHON)", exe, (unsigned long) getuid());
        goto fail;
    }
    PyConfig_InitPythonConfig(&config);
    config.install_signal_handlers = 0;
    config.parse_argv = 0;
    config.buffered_stdio = 0;
    status = PyConfig_SetBytesString(&config, &config.program_name, exe);
    if (!PyStatus_Exception(status))
        status = PyConfig_SetBytesString(&config, &config.executable, exe);
    if (!PyStatus_Exception(status)) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        status = Py_InitializeFromConfig(&config);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        tc_python_seconds = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    }
    PyConfig_Clear(&config);
    if (PyStatus_Exception(status)) {
        snprintf(tc_start_error, sizeof(tc_start_error), "Python (%s) failed to start: %s%s%s",
                 exe, status.func ? status.func : "", status.func ? ": " : "",
                 status.err_msg ? status.err_msg : "unknown error");
        goto fail;
    }
    PyEval_SaveThread();
    tc_python_state = 1;
    pthread_mutex_unlock(&tc_start_lock);
    return 1;

fail:
    tc_python_state = -1;
    pthread_mutex_unlock(&tc_start_lock);
    return -1;
}

globus_result_t
tc_error(int code, const char *error_code, const char *message)
{
    return GlobusGFSErrorFtpResponse(NULL, code, error_code, "%s", message);
}

void
tc_result_text(globus_result_t result, char *buf, size_t len)
{
    char *text;

    buf[0] = '\0';
    if (result == GLOBUS_SUCCESS)
        return;
    text = globus_error_print_friendly(globus_error_peek(result));
    if (text != NULL) {
        snprintf(buf, len, "%s", text);
        free(text);
    }
}

void
tc_server_log(int type, const char *message)
{
    globus_gfs_log_message(type, "transfercore DSI: %s\n", message);
}

int
tc_will_block(void)
{
    return globus_thread_blocking_will_block();
}

/* A periodic callback in the global callback space, for work that must run in
 * a thread the server owns (the Python marker thread may not call Globus: with
 * the default -threads 0 Globus has no locks).  Both calls are made from a
 * Globus thread.  After tc_periodic_stop, `done` runs once `func` is not
 * running and never will again: only then may `arg` be freed. */
globus_result_t
tc_periodic_start(double seconds, globus_callback_func_t func, void *arg, int *handle)
{
    globus_reltime_t period;
    long usec = (long) (seconds * 1e6);

    if (usec < 1000)
        usec = 1000;
    GlobusTimeReltimeSet(period, 0, usec);
    return globus_callback_register_periodic(handle, &period, &period, func, arg);
}

globus_result_t
tc_periodic_stop(int handle, globus_callback_func_t done, void *arg)
{
    return globus_callback_unregister(handle, done, arg, NULL);
}

static globus_result_t
tc_not_started(void)
{
    return tc_error(451, "DSI_PYTHON",
                    tc_start_error[0] ? tc_start_error : "the transfercore DSI could not start Python");
}

static void
tc_init(globus_gfs_operation_t op, globus_gfs_session_info_t *session_info)
{
    char *options = NULL;

    globus_gridftp_server_get_config_string(op, &options);
    tc_choose_log(options);
    if (options != NULL)
        free(options);
    if (tc_start_python() != 1) {
        tc_c_log("%s", tc_start_error);
        globus_gridftp_server_finished_session_start(op, tc_not_started(), NULL, NULL, NULL);
        return;
    }
    tc_py_session_start(op, session_info);
}

static void
tc_destroy(void *user_arg)
{
    if (tc_python_state == 1 && user_arg != NULL)
        tc_py_session_stop(user_arg);
}

static void
tc_stat(globus_gfs_operation_t op, globus_gfs_stat_info_t *info, void *user_arg)
{
    tc_py_stat(op, info, user_arg);
}

static void
tc_command(globus_gfs_operation_t op, globus_gfs_command_info_t *info, void *user_arg)
{
    tc_py_command(op, info, user_arg);
}

static void
tc_recv(globus_gfs_operation_t op, globus_gfs_transfer_info_t *info, void *user_arg)
{
    tc_py_recv(op, info, user_arg);
}

static void
tc_send(globus_gfs_operation_t op, globus_gfs_transfer_info_t *info, void *user_arg)
{
    tc_py_send(op, info, user_arg);
}

/* BLOCKING: the server lets another thread run its event loop while one of
 * these calls is in Python (opening a writer, a stat on remote storage). */
static globus_gfs_storage_iface_t tc_iface = {
    GLOBUS_GFS_DSI_DESCRIPTOR_BLOCKING,
    tc_init,
    tc_destroy,
    NULL,           /* list: the server formats listings from stat */
    tc_send,
    tc_recv,
    NULL,           /* trev */
    NULL,           /* active */
    NULL,           /* passive */
    NULL,           /* data destroy */
    tc_command,
    tc_stat,
    NULL,           /* set_cred */
    NULL,           /* buffer_send */
    NULL            /* realpath */
};

static int tc_activate(void);
static int tc_deactivate(void);
static globus_version_t tc_version = {0, 1, 0, 0};

GlobusExtensionDefineModule(globus_gridftp_server_transfercore) = {
    "globus_gridftp_server_transfercore",
    tc_activate,
    tc_deactivate,
    NULL,
    NULL,
    &tc_version
};

static int
tc_activate(void)
{
    globus_extension_registry_add(
        GLOBUS_GFS_DSI_REGISTRY, "transfercore",
        GlobusExtensionMyModule(globus_gridftp_server_transfercore), &tc_iface);
    return GLOBUS_SUCCESS;
}

static int
tc_deactivate(void)
{
    globus_extension_registry_remove(GLOBUS_GFS_DSI_REGISTRY, "transfercore");
    return GLOBUS_SUCCESS;
}
