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

#ifndef _GNU_SOURCE
#define _GNU_SOURCE     /* sync_file_range */
#endif
#include <globus_gridftp_server.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* Python entry points (extern "Python+C" in the cdef). */
void tc_py_session_start(globus_gfs_operation_t, globus_gfs_session_info_t *);
void tc_py_session_stop(void *);
void tc_py_stat(globus_gfs_operation_t, globus_gfs_stat_info_t *, void *);
void tc_py_command(globus_gfs_operation_t, globus_gfs_command_info_t *, void *);
void tc_py_recv(globus_gfs_operation_t, globus_gfs_transfer_info_t *, void *);
void tc_py_send(globus_gfs_operation_t, globus_gfs_transfer_info_t *, void *);
void tc_py_sink_done(void *);
void tc_py_report_stopped(void *);
void tc_py_warm(void);

static pthread_mutex_t tc_start_lock = PTHREAD_MUTEX_INITIALIZER;
static int tc_python_state = 0;          /* 0 not tried, 1 running, -1 failed */
static char tc_start_error[2048] = "";
static char tc_log_file[4096] = "";
static double tc_python_seconds = 0.0;     /* Py_InitializeFromConfig, for the start-up log */
static double tc_warm_seconds = -1.0;      /* warm: how long the process waited for its connection */

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

double
tc_warm_waited(void)
{
    return tc_warm_seconds;
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

/* ---- The upload data path in C -------------------------------------------
 *
 * For a driver that lends its partial file's descriptor (posix), the read
 * callbacks never enter Python: each block is pwrite'd here, in the Globus
 * thread that received it, into the buffer it came in, and its range joins
 * `done`.  Python runs only in its durability thread (every flush period: it
 * takes `done`, tells the writer, calls durable() and queues the new durable
 * ranges here) and once at the end (tc_py_sink_done: last durable(),
 * complete(), finished_transfer).  Queued ranges go to the server from Globus
 * threads only: the next read callback or a periodic Globus timer.
 *
 * A range is claimed before its pwrite, so overlapping data (a broken client)
 * fail the upload instead of overwriting bytes a marker named. */

typedef struct {
    globus_off_t *v;            /* start, end pairs, sorted, disjoint, not touching */
    int n;                      /* pairs */
    int cap;
} tc_spans_t;

/* Add [a, b); with `strict`, refuse (-1) if it overlaps what is there.  -2: no memory. */
static int
tc_spans_add(tc_spans_t *s, globus_off_t a, globus_off_t b, int strict)
{
    int lo = 0, hi, k;

    if (a >= b)
        return 0;
    /* first pair whose end >= a (may touch or overlap) */
    while (lo < s->n && s->v[2 * lo + 1] < a)
        lo++;
    hi = lo;
    while (hi < s->n && s->v[2 * hi] <= b) {
        if (strict && s->v[2 * hi] < b && s->v[2 * hi + 1] > a)
            return -1;
        hi++;
    }
    if (hi > lo) {              /* merge pairs lo..hi-1 with [a, b) into lo */
        if (s->v[2 * lo] < a)
            a = s->v[2 * lo];
        if (s->v[2 * (hi - 1) + 1] > b)
            b = s->v[2 * (hi - 1) + 1];
        s->v[2 * lo] = a;
        s->v[2 * lo + 1] = b;
        k = hi - lo - 1;
        if (k > 0) {
            memmove(&s->v[2 * (lo + 1)], &s->v[2 * hi], sizeof(globus_off_t) * 2 * (s->n - hi));
            s->n -= k;
        }
        return 0;
    }
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 16;
        globus_off_t *v = realloc(s->v, sizeof(globus_off_t) * 2 * cap);
        if (v == NULL)
            return -2;
        s->v = v;
        s->cap = cap;
    }
    memmove(&s->v[2 * (lo + 1)], &s->v[2 * lo], sizeof(globus_off_t) * 2 * (s->n - lo));
    s->v[2 * lo] = a;
    s->v[2 * lo + 1] = b;
    s->n++;
    return 0;
}

typedef struct tc_sink {
    globus_gfs_operation_t op;
    int fd;
    globus_off_t size;
    globus_size_t block;
    int nbufs;
    globus_byte_t **bufs;
    void *py;                   /* the Python upload's handle */
    pthread_mutex_t lock;       /* everything below */
    tc_spans_t claimed;
    tc_spans_t done;
    tc_spans_t queued;          /* durable ranges for the server's next 111 */
    int pending;
    int eof;
    int finished;
    int errnum;                 /* a failed pwrite's errno */
    char error[1024];
    globus_off_t received;
    long callbacks;
    double write_seconds;
    pthread_mutex_t report_lock;    /* held while ranges go to the server */
    int reports_closed;
    int timer;
    int timer_on;
} tc_sink_t;

static double
tc_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void
tc_sink_fail_locked(tc_sink_t *s, const char *fmt, ...)
{
    va_list ap;

    if (s->error[0] != '\0')
        return;
    va_start(ap, fmt);
    vsnprintf(s->error, sizeof(s->error), fmt, ap);
    va_end(ap);
    if (s->error[0] == '\0')
        strcpy(s->error, "the upload failed");
}

tc_sink_t *
tc_sink_new(globus_gfs_operation_t op, int fd, globus_off_t size, void *py)
{
    tc_sink_t *s = calloc(1, sizeof(*s));

    if (s == NULL)
        return NULL;
    s->op = op;
    s->fd = fd;
    s->size = size;
    s->py = py;
    pthread_mutex_init(&s->lock, NULL);
    pthread_mutex_init(&s->report_lock, NULL);
    return s;
}

/* Bytes the writer holds already (a resumed upload): no block may land on them. */
int
tc_sink_claim(tc_sink_t *s, globus_off_t start, globus_off_t end)
{
    int rc;

    pthread_mutex_lock(&s->lock);
    rc = tc_spans_add(&s->claimed, start, end, 1);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

/* Hand the queued durable ranges to the server (a Globus thread only). */
void
tc_sink_report(tc_sink_t *s, int last)
{
    tc_spans_t batch = {NULL, 0, 0};
    int i;

    pthread_mutex_lock(&s->report_lock);
    if (!s->reports_closed) {
        pthread_mutex_lock(&s->lock);
        batch = s->queued;
        s->queued.v = NULL;
        s->queued.n = s->queued.cap = 0;
        pthread_mutex_unlock(&s->lock);
        for (i = 0; i < batch.n; i++)
            globus_gridftp_server_update_range_recvd(s->op, batch.v[2 * i], batch.v[2 * i + 1] - batch.v[2 * i]);
        if (last)
            s->reports_closed = 1;
    }
    pthread_mutex_unlock(&s->report_lock);
    free(batch.v);
}

/* Queue a durable range (any thread; the Python durability thread). */
int
tc_sink_queue(tc_sink_t *s, globus_off_t start, globus_off_t length)
{
    int rc;

    pthread_mutex_lock(&s->lock);
    rc = tc_spans_add(&s->queued, start, start + length, 0);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

/* The ranges whose pwrite returned, as start, end pairs into `out` (at most
 * `max` pairs); returns how many there are (call again with more room when
 * that exceeds `max`). */
int
tc_sink_written(tc_sink_t *s, globus_off_t *out, int max)
{
    int n;

    pthread_mutex_lock(&s->lock);
    n = s->done.n;
    if (n <= max && n > 0)
        memcpy(out, s->done.v, sizeof(globus_off_t) * 2 * n);
    pthread_mutex_unlock(&s->lock);
    return n;
}

/* Received bytes, data callbacks, seconds in pwrite; a failed pwrite's errno and the failure, if any, into `error`. */
void
tc_sink_stats(tc_sink_t *s, globus_off_t *received, long *callbacks, double *write_seconds,
              int *errnum, char *error, size_t len)
{
    pthread_mutex_lock(&s->lock);
    *errnum = s->errnum;
    *received = s->received;
    *callbacks = s->callbacks;
    *write_seconds = s->write_seconds;
    snprintf(error, len, "%s", s->error);
    pthread_mutex_unlock(&s->lock);
}

/* Start writeback of what is dirty, without waiting for it (the durability
 * thread, between durable() calls): the final flush before 226 then finds
 * little left, and the device works while the network does. */
int
tc_sink_kick(tc_sink_t *s)
{
    return sync_file_range(s->fd, 0, 0, SYNC_FILE_RANGE_WRITE) == 0 ? 0 : errno;
}

static void tc_sink_read_cb(globus_gfs_operation_t, globus_result_t, globus_byte_t *, globus_size_t,
                            globus_off_t, globus_bool_t, void *);

static void
tc_sink_after(tc_sink_t *s, globus_byte_t *buf, int again)
{
    globus_result_t res;
    int done;

    if (again) {
        res = globus_gridftp_server_register_read(s->op, buf, s->block, tc_sink_read_cb, s);
        /* Registered: its callback comes later and decides the end.  `s` is
         * not touched again here: with -threads N the upload may end, and
         * the sink be freed, before this thread runs on. */
        if (res == GLOBUS_SUCCESS)
            return;
        {
            char text[512];
            tc_result_text(res, text, sizeof(text));
            pthread_mutex_lock(&s->lock);
            s->pending--;
            tc_sink_fail_locked(s, "the server refused a data read: %s", text);
            pthread_mutex_unlock(&s->lock);
        }
    }
    pthread_mutex_lock(&s->lock);
    done = s->pending == 0 && !s->finished && (s->eof || s->error[0] != '\0');
    if (done)
        s->finished = 1;
    pthread_mutex_unlock(&s->lock);
    if (done)
        tc_py_sink_done(s->py);
}

static void
tc_sink_read_cb(globus_gfs_operation_t op, globus_result_t result, globus_byte_t *buf,
                globus_size_t nbytes, globus_off_t offset, globus_bool_t eof, void *arg)
{
    tc_sink_t *s = arg;
    globus_off_t end = offset + (globus_off_t) nbytes;
    int ok = 0, again = 0, rc;

    if (result != GLOBUS_SUCCESS) {
        char text[512];
        tc_result_text(result, text, sizeof(text));
        pthread_mutex_lock(&s->lock);
        tc_sink_fail_locked(s, "the data connection failed: %s", text);
        pthread_mutex_unlock(&s->lock);
    } else if (nbytes > 0) {
        pthread_mutex_lock(&s->lock);
        if (offset < 0 || end > s->size)
            tc_sink_fail_locked(s, "data at %lld-%lld lie outside the announced upload of %lld bytes",
                                (long long) offset, (long long) end, (long long) s->size);
        else if ((rc = tc_spans_add(&s->claimed, offset, end, 1)) != 0)
            tc_sink_fail_locked(s, rc == -1 ? "data at %lld-%lld arrived twice" : "out of memory at %lld-%lld",
                                (long long) offset, (long long) end);
        else
            ok = 1;
        pthread_mutex_unlock(&s->lock);
        if (ok) {
            double t0 = tc_now();
            globus_size_t pos = 0;
            int err = 0;
            while (pos < nbytes) {
                ssize_t n = pwrite(s->fd, buf + pos, nbytes - pos, offset + (globus_off_t) pos);
                if (n < 0) {
                    if (errno == EINTR)
                        continue;
                    err = errno;
                    break;
                }
                if (n == 0) {
                    err = EIO;
                    break;
                }
                pos += (globus_size_t) n;
            }
            pthread_mutex_lock(&s->lock);
            s->write_seconds += tc_now() - t0;
            if (err != 0 && s->error[0] == '\0')
                s->errnum = err;
            if (err != 0)
                tc_sink_fail_locked(s, "cannot write %lld-%lld: %s (errno %d)",
                                    (long long) offset, (long long) end, strerror(err), err);
            else if (tc_spans_add(&s->done, offset, end, 0) != 0)
                tc_sink_fail_locked(s, "out of memory");
            pthread_mutex_unlock(&s->lock);
            if (err == 0)
                globus_gridftp_server_update_bytes_recvd(op, (globus_off_t) nbytes);
        }
    }
    tc_sink_report(s, 0);
    pthread_mutex_lock(&s->lock);
    s->pending--;
    s->received += (globus_off_t) nbytes;
    s->callbacks++;
    if (eof)
        s->eof = 1;
    if (!s->eof && s->error[0] == '\0') {
        s->pending++;
        again = 1;
    }
    pthread_mutex_unlock(&s->lock);
    tc_sink_after(s, buf, again);
}

static void
tc_sink_timer_cb(void *arg)
{
    tc_sink_report((tc_sink_t *) arg, 0);
}

/* Register `nbufs` reads of `block` bytes, and the marker timer (a Globus
 * thread, after begin_transfer).  A read the server refuses counts as a
 * failure; if none could be registered, tc_py_sink_done runs before this returns. */
void
tc_sink_start(tc_sink_t *s, int nbufs, globus_size_t block, double report_period)
{
    globus_reltime_t period;
    long usec = (long) (report_period * 1e6);
    int i;

    s->block = block;
    s->bufs = calloc((size_t) nbufs, sizeof(*s->bufs));
    pthread_mutex_lock(&s->lock);
    s->pending = nbufs;
    pthread_mutex_unlock(&s->lock);
    if (report_period > 0) {
        if (usec < 1000)
            usec = 1000;
        GlobusTimeReltimeSet(period, 0, usec);
        if (globus_callback_register_periodic(&s->timer, &period, &period, tc_sink_timer_cb, s) == GLOBUS_SUCCESS)
            s->timer_on = 1;
    }
    for (i = 0; i < nbufs; i++) {
        if (s->bufs != NULL)
            s->bufs[i] = malloc(block);
        if (s->bufs == NULL || s->bufs[i] == NULL) {
            pthread_mutex_lock(&s->lock);
            s->pending--;
            tc_sink_fail_locked(s, "out of memory for %d buffers of %lu bytes", nbufs, (unsigned long) block);
            pthread_mutex_unlock(&s->lock);
            tc_sink_after(s, NULL, 0);
            continue;
        }
        s->nbufs = i + 1;
        tc_sink_after(s, s->bufs[i], 1);
    }
}

int
tc_sink_has_timer(tc_sink_t *s)
{
    return s->timer_on;
}

static void
tc_sink_free(tc_sink_t *s)
{
    void *py = s->py;
    int i;

    for (i = 0; i < s->nbufs; i++)
        free(s->bufs[i]);
    free(s->bufs);
    free(s->claimed.v);
    free(s->done.v);
    free(s->queued.v);
    pthread_mutex_destroy(&s->lock);
    pthread_mutex_destroy(&s->report_lock);
    free(s);
    tc_py_report_stopped(py);
}

static void
tc_sink_timer_stopped(void *arg)
{
    tc_sink_free((tc_sink_t *) arg);
}

/* After finished_transfer, no read pending (a Globus thread): the sink and
 * its buffers go once the timer can no longer fire, then the Python upload
 * is released (tc_py_report_stopped). */
void
tc_sink_release(tc_sink_t *s)
{
    if (s->timer_on) {
        s->timer_on = 0;
        if (globus_callback_unregister(s->timer, tc_sink_timer_stopped, s, NULL) == GLOBUS_SUCCESS)
            return;
        /* the timer may still fire: keep the sink (a leak, never a use after free) */
        return;
    }
    tc_sink_free(s);
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

/* A warm session process (started by transfercore_globus_dsi.warm, never by
 * the daemon): the server loads this module before it looks at the
 * connection on its stdin, so Python starts and imports here, and only then
 * does the process wait for a connection.  transfercore-dsi-exec, which the
 * daemon execs for each connection, hands it the connection over the pool's
 * Unix socket:
 *   warm -> launcher  'w'             a warm process accepted
 *   launcher -> warm  one byte + the connection (SCM_RIGHTS)
 *   warm -> launcher  'k'             taken: from here the session is ours
 * Until the 'k' the launcher still holds the connection and starts a cold
 * server itself if anything fails, so a client never meets a dead process.
 * The launcher then waits for this process to end (its end of the socket
 * closes), so the daemon counts the session as long as it lasts.  Closing
 * the notify pipe tells the pool that this process is taken; the pool
 * closing its end tells a waiting process to leave. */
static int
tc_warm_take(int conn)
{
    char byte = 'w';
    char data;
    struct pollfd pfd = {conn, POLLIN, 0};
    struct msghdr msg;
    struct iovec iov = {&data, 1};
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } cbuf;
    struct cmsghdr *cm;
    struct stat st;
    int fd = -1;

    if (send(conn, &byte, 1, MSG_NOSIGNAL) != 1)
        return -1;
    if (poll(&pfd, 1, 2000) != 1)
        return -1;
    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.buf;
    msg.msg_controllen = sizeof(cbuf.buf);
    if (recvmsg(conn, &msg, MSG_CMSG_CLOEXEC) != 1)
        return -1;
    for (cm = CMSG_FIRSTHDR(&msg); cm != NULL; cm = CMSG_NXTHDR(&msg, cm))
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS
                && cm->cmsg_len == CMSG_LEN(sizeof(int)))
            memcpy(&fd, CMSG_DATA(cm), sizeof(int));
    if (fd < 0)
        return -1;
    /* only a socket can be a client's connection */
    if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) {
        close(fd);
        return -1;
    }
    byte = 'k';
    if (send(conn, &byte, 1, MSG_NOSIGNAL) != 1) {
        close(fd);
        return -1;
    }
    return fd;
}

/* A warm process starts Python at idle priority (SCHED_IDLE) when the pool
 * asks, so refilling the pool never takes a CPU from a session, and waits at
 * normal priority, so that a busy machine still hands it its connection at
 * once.  The policy is a thread's own: every thread the process has is set. */
static int
tc_warm_policy(int policy)
{
    struct sched_param sp;
    struct dirent *e;
    DIR *dir;
    int failed = 0;

    memset(&sp, 0, sizeof(sp));
    dir = opendir("/proc/self/task");
    if (dir == NULL)
        return sched_setscheduler(0, policy, &sp);
    while ((e = readdir(dir)) != NULL)
        if (e->d_name[0] >= '0' && e->d_name[0] <= '9'
                && sched_setscheduler((pid_t) atoi(e->d_name), policy, &sp) != 0)
            failed = -1;
    closedir(dir);
    return failed;
}

static void
tc_warm_wait(const char *spec)
{
    int listen_fd = -1, notify_fd = -1, idle = 0;
    struct timespec t0, t1;
    char ready = 'r';

    if (sscanf(spec, "%d,%d,%d", &listen_fd, &notify_fd, &idle) < 2 || listen_fd < 0 || notify_fd < 0)
        return;
    unsetenv("TRANSFERCORE_DSI_WARM_FD");
    /* only when the way back is allowed (CAP_SYS_NICE): the pool asks only as root */
    if (idle && tc_warm_policy(SCHED_IDLE) != 0)
        idle = 0;
    /* the log the environment names: the pool's server names the same one in log= */
    tc_choose_log(NULL);
    if (tc_start_python() == 1)
        tc_py_warm();
    if (idle && tc_warm_policy(SCHED_OTHER) != 0) {
        /* a session at idle priority would crawl: leave, and the pool stops after a few */
        tc_c_log("warm session process: cannot return to normal priority: %s", strerror(errno));
        _exit(1);
    }
    /* a Python that failed to start is reported to the session, as in a cold start */
    if (write(notify_fd, &ready, 1) != 1)
        _exit(0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        struct pollfd pfd[2] = {{listen_fd, POLLIN, 0}, {notify_fd, 0, 0}};
        int conn, fd;

        if (poll(pfd, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            _exit(1);
        }
        if (pfd[1].revents & (POLLERR | POLLHUP))
            _exit(0);   /* the pool is gone: nobody will hand a connection */
        if (!(pfd[0].revents & POLLIN))
            continue;
        /* the pool made the socket non-blocking: every waiting process wakes, one
         * gets the connection, the others go back to watching the pool too */
        conn = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (conn < 0)
            continue;
        fd = tc_warm_take(conn);
        if (fd < 0) {
            close(conn);
            continue;
        }
        if (dup2(fd, STDIN_FILENO) < 0)
            _exit(1);
        close(fd);
        close(listen_fd);
        close(notify_fd);
        /* conn stays open (close-on-exec) until this process ends */
        break;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    tc_warm_seconds = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
}

static int
tc_activate(void)
{
    const char *warm = getenv("TRANSFERCORE_DSI_WARM_FD");

    if (warm != NULL && *warm != '\0')
        tc_warm_wait(warm);
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
