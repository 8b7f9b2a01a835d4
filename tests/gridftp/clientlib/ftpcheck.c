/*
 * ftpcheck: one operation of the Globus FTP client library (libglobus-ftp-client)
 * per run, so the project's tests can hold every GridFTP server it ships to what
 * the Globus client library expects.  Written against the library's public
 * headers only.
 *
 * Exit status: 0 the operation succeeded, 1 the server or library reported an
 * error (printed on stderr as "error: ..."), 2 bad usage or a local failure.
 *
 *   ftpcheck exists URL                 prints "exists" or "missing"
 *   ftpcheck size URL                   prints the size
 *   ftpcheck mlst URL                   prints the MLST fact line
 *   ftpcheck mlsd URL                   prints the MLSD listing
 *   ftpcheck put FILE URL [-E N] [-A]   -E: MODE E with N streams; -A: send ALLO
 *   ftpcheck get URL FILE [-E N] [-R OFF]   -R: restart (REST) at OFF
 *   ftpcheck pput FILE URL OFF END [-A] partial put of FILE[OFF, END)
 *   ftpcheck pget URL FILE OFF END      partial get; bytes land at their offsets
 *   ftpcheck 3pt SRC DST [-E N]         third-party transfer
 *   ftpcheck p3pt SRC DST OFF END       partial third-party transfer
 *   ftpcheck pipe SRCDIR DSTDIR NAME... pipelined third-party transfers (MODE E)
 *   ftpcheck restart-put FILE URL [-A]  MODE E put: send half, wait for a
 *       restart marker, abort, then put again from the markers received
 *       (prints "marker RANGES" and "resent N")
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "globus_ftp_client.h"
#include "globus_ftp_client_restart_marker_plugin.h"

#define CHUNK (64 * 1024)
#define READ_BUFFERS 4
#define MAX_RANGES 256

typedef struct {
    globus_mutex_t lock;
    globus_cond_t cond;
    int done;
    globus_object_t *error;
} monitor_t;

static void monitor_init(monitor_t *m)
{
    globus_mutex_init(&m->lock, NULL);
    globus_cond_init(&m->cond, NULL);
    m->done = 0;
    m->error = NULL;
}

static void complete_cb(void *arg, globus_ftp_client_handle_t *handle, globus_object_t *error)
{
    monitor_t *m = arg;
    (void)handle;
    globus_mutex_lock(&m->lock);
    if (error != NULL)
        m->error = globus_object_copy(error);
    m->done = 1;
    globus_cond_signal(&m->cond);
    globus_mutex_unlock(&m->lock);
}

/* Waits for the operation; 0 on success, 1 (after printing the error) otherwise. */
static int monitor_wait(monitor_t *m, const char *what)
{
    globus_mutex_lock(&m->lock);
    while (!m->done)
        globus_cond_wait(&m->cond, &m->lock);
    globus_mutex_unlock(&m->lock);
    if (m->error != NULL) {
        char *text = globus_error_print_friendly(m->error);
        fprintf(stderr, "error: %s: %s\n", what, text ? text : "(no text)");
        free(text);
        return 1;
    }
    return 0;
}

static int started(globus_result_t result, const char *what)
{
    if (result == GLOBUS_SUCCESS)
        return 1;
    char *text = globus_error_print_friendly(globus_error_peek(result));
    fprintf(stderr, "error: %s: %s\n", what, text ? text : "(no text)");
    free(text);
    return 0;
}

static void die(const char *what)
{
    fprintf(stderr, "ftpcheck: %s: %s\n", what, strerror(errno));
    exit(2);
}

static globus_byte_t *load(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0)
        die(path);
    globus_byte_t *data = malloc(st.st_size ? (size_t)st.st_size : 1);
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, data + got, (size_t)st.st_size - got);
        if (n <= 0)
            die(path);
        got += (size_t)n;
    }
    close(fd);
    *len = got;
    return data;
}

/* ---- uploads: a queue of (offset, length) pieces written one after another ---- */

#define MAX_PIECES (MAX_RANGES * 2 + 1024)

typedef struct {
    globus_byte_t *data;
    globus_off_t piece_off[MAX_PIECES];
    globus_off_t piece_len[MAX_PIECES];
    int pieces;
    int next;
    int hold_at;          /* stop registering before this piece (-1: never) */
    int held;
    globus_off_t sent;
    globus_mutex_t lock;
    globus_cond_t cond;
} writer_t;

static void writer_pieces(writer_t *w, globus_off_t from, globus_off_t to)
{
    for (globus_off_t off = from; off < to; off += CHUNK) {
        globus_off_t n = to - off < CHUNK ? to - off : CHUNK;
        if (w->pieces >= MAX_PIECES) {
            fprintf(stderr, "ftpcheck: too many pieces to send (files up to %d MiB)\n", MAX_PIECES / 16);
            exit(2);
        }
        w->piece_off[w->pieces] = off;
        w->piece_len[w->pieces] = n;
        w->pieces++;
    }
}

static void write_next(writer_t *w, globus_ftp_client_handle_t *handle);

static void write_cb(void *arg, globus_ftp_client_handle_t *handle, globus_object_t *error,
                     globus_byte_t *buffer, globus_size_t length, globus_off_t offset, globus_bool_t eof)
{
    writer_t *w = arg;
    (void)buffer;
    (void)offset;
    (void)eof;
    globus_mutex_lock(&w->lock);
    if (error == NULL)
        w->sent += (globus_off_t)length;
    globus_mutex_unlock(&w->lock);
    if (error == NULL)
        write_next(w, handle);
}

static void write_next(writer_t *w, globus_ftp_client_handle_t *handle)
{
    globus_mutex_lock(&w->lock);
    if (w->next >= w->pieces || (w->hold_at >= 0 && w->next >= w->hold_at)) {
        w->held = w->next < w->pieces;
        globus_cond_broadcast(&w->cond);
        globus_mutex_unlock(&w->lock);
        return;
    }
    int i = w->next++;
    globus_bool_t eof = w->next == w->pieces;
    globus_mutex_unlock(&w->lock);
    static globus_byte_t empty[1];
    globus_byte_t *buf = w->piece_len[i] ? w->data + w->piece_off[i] : empty;
    globus_ftp_client_register_write(handle, buf, (globus_size_t)w->piece_len[i], w->piece_off[i], eof,
                                     write_cb, w);
}

static void writer_init(writer_t *w, globus_byte_t *data)
{
    memset(w, 0, sizeof *w);
    w->data = data;
    w->hold_at = -1;
    globus_mutex_init(&w->lock, NULL);
    globus_cond_init(&w->cond, NULL);
}

/* An empty upload still needs one (empty) write carrying EOF. */
static void writer_finish_plan(writer_t *w, globus_off_t at)
{
    if (w->pieces == 0) {
        w->piece_off[0] = at;
        w->piece_len[0] = 0;
        w->pieces = 1;
    }
}

/* ---- downloads: every buffer lands at its offset in a local file ---- */

typedef struct {
    int fd;
    globus_off_t base; /* subtracted from the offsets the library reports */
    globus_off_t received;
    int failed;
    globus_mutex_t lock;
    globus_byte_t buffers[READ_BUFFERS][CHUNK];
} reader_t;

static void read_cb(void *arg, globus_ftp_client_handle_t *handle, globus_object_t *error,
                    globus_byte_t *buffer, globus_size_t length, globus_off_t offset, globus_bool_t eof)
{
    reader_t *r = arg;
    if (length > 0 && pwrite(r->fd, buffer, length, offset - r->base) != (ssize_t)length) {
        globus_mutex_lock(&r->lock);
        r->failed = 1;
        globus_mutex_unlock(&r->lock);
    }
    globus_mutex_lock(&r->lock);
    r->received += (globus_off_t)length;
    globus_mutex_unlock(&r->lock);
    if (error == NULL && !eof)
        globus_ftp_client_register_read(handle, buffer, CHUNK, read_cb, r);
}

static reader_t *reader_open(const char *path, int truncate)
{
    reader_t *r = calloc(1, sizeof *r);
    r->fd = open(path, O_WRONLY | O_CREAT | (truncate ? O_TRUNC : 0), 0644);
    if (r->fd < 0)
        die(path);
    globus_mutex_init(&r->lock, NULL);
    return r;
}

static void reader_start(reader_t *r, globus_ftp_client_handle_t *handle)
{
    for (int i = 0; i < READ_BUFFERS; i++)
        globus_ftp_client_register_read(handle, r->buffers[i], CHUNK, read_cb, r);
}

static int reader_close(reader_t *r)
{
    int bad = r->failed || fsync(r->fd) != 0 || close(r->fd) != 0;
    if (bad)
        fprintf(stderr, "ftpcheck: writing the local copy failed\n");
    return bad ? 2 : 0;
}

/* ---- options ---- */

typedef struct {
    int streams;         /* 0: MODE S */
    int allo;
    globus_off_t rest;   /* -1: none */
} options_t;

static void parse_options(int argc, char **argv, int first, options_t *o)
{
    o->streams = 0;
    o->allo = 0;
    o->rest = -1;
    for (int i = first; i < argc; i++) {
        if (strcmp(argv[i], "-E") == 0 && i + 1 < argc)
            o->streams = atoi(argv[++i]);
        else if (strcmp(argv[i], "-A") == 0)
            o->allo = 1;
        else if (strcmp(argv[i], "-R") == 0 && i + 1 < argc)
            o->rest = strtoll(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "ftpcheck: unknown option %s\n", argv[i]);
            exit(2);
        }
    }
}

static void apply_mode(globus_ftp_client_operationattr_t *attr, int streams)
{
    if (streams <= 0)
        return;
    globus_ftp_control_parallelism_t par;
    memset(&par, 0, sizeof par);
    par.mode = GLOBUS_FTP_CONTROL_PARALLELISM_FIXED;
    par.fixed.size = (globus_size_t)streams;
    globus_ftp_client_operationattr_set_mode(attr, GLOBUS_FTP_CONTROL_MODE_EXTENDED_BLOCK);
    globus_ftp_client_operationattr_set_parallelism(attr, &par);
}

/* ---- restart markers: the ranges every 111 reply named, merged ---- */

typedef struct {
    globus_mutex_t lock;
    globus_cond_t cond;
    globus_off_t start[MAX_RANGES];
    globus_off_t end[MAX_RANGES];
    int n;
    int markers;
} marks_t;

static void marks_add(marks_t *k, globus_off_t s, globus_off_t e)
{
    if (e <= s)
        return;
    for (int i = 0; i < k->n; i++) {
        if (s <= k->end[i] && e >= k->start[i]) { /* overlaps or touches: merge, then re-merge */
            s = s < k->start[i] ? s : k->start[i];
            e = e > k->end[i] ? e : k->end[i];
            k->start[i] = k->start[--k->n];
            k->end[i] = k->end[k->n];
            marks_add(k, s, e);
            return;
        }
    }
    if (k->n < MAX_RANGES) {
        k->start[k->n] = s;
        k->end[k->n] = e;
        k->n++;
    }
}

static globus_bool_t marker_begin_cb(void *arg, globus_ftp_client_handle_t *handle, const char *src,
                                     const char *dst, globus_ftp_client_restart_marker_t *saved)
{
    (void)arg;
    (void)handle;
    (void)src;
    (void)dst;
    (void)saved;
    return GLOBUS_FALSE; /* use no marker saved by the plug-in: we pass our own */
}

static void marker_cb(void *arg, globus_ftp_client_handle_t *handle, globus_ftp_client_restart_marker_t *marker)
{
    marks_t *k = arg;
    char *text = NULL;
    (void)handle;
    if (globus_ftp_client_restart_marker_to_string(marker, &text) != GLOBUS_SUCCESS || text == NULL)
        return;
    globus_mutex_lock(&k->lock);
    for (char *p = text; *p;) {
        long long s, e;
        int used = 0;
        if (sscanf(p, "%lld-%lld%n", &s, &e, &used) != 2)
            break;
        marks_add(k, (globus_off_t)s, (globus_off_t)e);
        p += used;
        if (*p == ',')
            p++;
    }
    k->markers++;
    globus_cond_broadcast(&k->cond);
    globus_mutex_unlock(&k->lock);
    globus_free(text);
}

static void marker_complete_cb(void *arg, globus_ftp_client_handle_t *handle, globus_object_t *error,
                               const char *url)
{
    (void)arg;
    (void)handle;
    (void)error;
    (void)url;
}

/* ---- operations ---- */

typedef struct {
    globus_ftp_client_handle_t handle;
    globus_ftp_client_handleattr_t hattr;
    globus_ftp_client_operationattr_t attr;
    globus_ftp_client_operationattr_t attr2;
    monitor_t mon;
} session_t;

static void session_open(session_t *s, globus_ftp_client_plugin_t *plugin)
{
    globus_ftp_client_handleattr_init(&s->hattr);
    if (plugin != NULL)
        globus_ftp_client_handleattr_add_plugin(&s->hattr, plugin);
    globus_ftp_client_handle_init(&s->handle, &s->hattr);
    globus_ftp_client_operationattr_init(&s->attr);
    globus_ftp_client_operationattr_init(&s->attr2);
    monitor_init(&s->mon);
}

static int op_put(const char *file, const char *url, options_t *o, globus_off_t from, globus_off_t to, int partial)
{
    session_t s;
    size_t len;
    globus_byte_t *data = load(file, &len);
    session_open(&s, NULL);
    apply_mode(&s.attr, o->streams);
    if (!partial) {
        from = 0;
        to = (globus_off_t)len;
    }
    if (to > (globus_off_t)len) {
        fprintf(stderr, "ftpcheck: %s has only %zu bytes\n", file, len);
        return 2;
    }
    if (o->allo)
        globus_ftp_client_operationattr_set_allocate(&s.attr, to - from);
    writer_t *w = malloc(sizeof *w);
    writer_init(w, data);
    writer_pieces(w, from, to);
    writer_finish_plan(w, from);
    globus_result_t r = partial ? globus_ftp_client_partial_put(&s.handle, url, &s.attr, NULL, from, to, complete_cb, &s.mon)
                                : globus_ftp_client_put(&s.handle, url, &s.attr, NULL, complete_cb, &s.mon);
    if (!started(r, "put"))
        return 1;
    write_next(w, &s.handle);
    return monitor_wait(&s.mon, "put");
}

static int op_get(const char *url, const char *file, options_t *o, globus_off_t from, globus_off_t to, int partial)
{
    session_t s;
    session_open(&s, NULL);
    apply_mode(&s.attr, o->streams);
    reader_t *rd = reader_open(file, 1);
    globus_ftp_client_restart_marker_t marker;
    globus_ftp_client_restart_marker_t *restart = NULL;
    if (o->rest >= 0) {
        globus_ftp_client_restart_marker_init(&marker);
        if (o->streams > 0)
            globus_ftp_client_restart_marker_insert_range(&marker, 0, o->rest);
        else
            globus_ftp_client_restart_marker_set_offset(&marker, o->rest);
        restart = &marker;
    }
    globus_result_t r = partial ? globus_ftp_client_partial_get(&s.handle, url, &s.attr, NULL, from, to, complete_cb, &s.mon)
                                : globus_ftp_client_get(&s.handle, url, &s.attr, restart, complete_cb, &s.mon);
    if (!started(r, "get"))
        return 1;
    reader_start(rd, &s.handle);
    int rc = monitor_wait(&s.mon, "get");
    int lrc = reader_close(rd);
    printf("received %lld\n", (long long)rd->received);
    return rc ? rc : lrc;
}

static int op_3pt(const char *src, const char *dst, options_t *o, globus_off_t from, globus_off_t to, int partial)
{
    session_t s;
    session_open(&s, NULL);
    apply_mode(&s.attr, o->streams);
    apply_mode(&s.attr2, o->streams);
    globus_result_t r = partial
        ? globus_ftp_client_partial_third_party_transfer(&s.handle, src, &s.attr, dst, &s.attr2, NULL, from, to,
                                                         complete_cb, &s.mon)
        : globus_ftp_client_third_party_transfer(&s.handle, src, &s.attr, dst, &s.attr2, NULL, complete_cb, &s.mon);
    if (!started(r, "third-party transfer"))
        return 1;
    return monitor_wait(&s.mon, "third-party transfer");
}

static int op_exists(const char *url)
{
    session_t s;
    session_open(&s, NULL);
    if (!started(globus_ftp_client_exists(&s.handle, url, &s.attr, complete_cb, &s.mon), "exists"))
        return 1;
    int rc = monitor_wait(&s.mon, "exists");
    printf("%s\n", rc == 0 ? "exists" : "missing");
    return rc;
}

static int op_size(const char *url)
{
    session_t s;
    globus_off_t size = -1;
    session_open(&s, NULL);
    if (!started(globus_ftp_client_size(&s.handle, url, &s.attr, &size, complete_cb, &s.mon), "size"))
        return 1;
    int rc = monitor_wait(&s.mon, "size");
    if (rc == 0)
        printf("%lld\n", (long long)size);
    return rc;
}

static int op_mlst(const char *url)
{
    session_t s;
    globus_byte_t *buf = NULL;
    globus_size_t len = 0;
    session_open(&s, NULL);
    if (!started(globus_ftp_client_mlst(&s.handle, url, &s.attr, &buf, &len, complete_cb, &s.mon), "mlst"))
        return 1;
    int rc = monitor_wait(&s.mon, "mlst");
    if (rc == 0 && buf != NULL)
        printf("%.*s\n", (int)len, (char *)buf);
    return rc;
}

static int op_mlsd(const char *url)
{
    session_t s;
    session_open(&s, NULL);
    char path[] = "/tmp/ftpcheck-mlsd-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        die("mkstemp");
    close(fd);
    reader_t *rd = reader_open(path, 1);
    if (!started(globus_ftp_client_machine_list(&s.handle, url, &s.attr, complete_cb, &s.mon), "mlsd"))
        return 1;
    reader_start(rd, &s.handle);
    int rc = monitor_wait(&s.mon, "mlsd");
    int lrc = reader_close(rd);
    if (rc == 0 && lrc == 0) {
        size_t len;
        globus_byte_t *text = load(path, &len);
        fwrite(text, 1, len, stdout);
    }
    unlink(path);
    return rc ? rc : lrc;
}

/* Pipelined third-party transfers: the library asks for the next pair while
 * earlier transfers' commands are still outstanding. */
typedef struct {
    char **names;
    int count;
    int next;
    const char *src_dir;
    const char *dst_dir;
} pipe_t;

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *out = malloc(n);
    snprintf(out, n, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", name);
    return out;
}

static void pipe_cb(globus_ftp_client_handle_t *handle, char **src, char **dst, void *arg)
{
    pipe_t *p = arg;
    (void)handle;
    if (p->next >= p->count) {
        *src = NULL;
        *dst = NULL;
        return;
    }
    *src = join(p->src_dir, p->names[p->next]);
    *dst = join(p->dst_dir, p->names[p->next]);
    p->next++;
}

static int op_pipe(const char *src_dir, const char *dst_dir, char **names, int count)
{
    session_t s;
    pipe_t p = {names, count, 1, src_dir, dst_dir};
    globus_ftp_client_handleattr_init(&s.hattr);
    globus_ftp_client_handleattr_set_pipeline(&s.hattr, 0, pipe_cb, &p);
    globus_ftp_client_handle_init(&s.handle, &s.hattr);
    globus_ftp_client_operationattr_init(&s.attr);
    globus_ftp_client_operationattr_init(&s.attr2);
    /* Data connections carry several files only in MODE E (MODE S closes them). */
    apply_mode(&s.attr, 1);
    apply_mode(&s.attr2, 1);
    monitor_init(&s.mon);
    char *src = join(src_dir, names[0]);
    char *dst = join(dst_dir, names[0]);
    if (!started(globus_ftp_client_third_party_transfer(&s.handle, src, &s.attr, dst, &s.attr2, NULL, complete_cb,
                                                        &s.mon),
                 "pipelined transfer"))
        return 1;
    int rc = monitor_wait(&s.mon, "pipelined transfer");
    printf("requested %d\n", p.next);
    return rc;
}

/* A put aborted after half the file and at least one restart marker, then
 * resumed from the markers: only the ranges no marker named are sent again. */
static int op_restart_put(const char *file, const char *url, options_t *o)
{
    size_t len;
    globus_byte_t *data = load(file, &len);
    marks_t *k = calloc(1, sizeof *k);
    globus_mutex_init(&k->lock, NULL);
    globus_cond_init(&k->cond, NULL);
    globus_ftp_client_plugin_t plugin;
    globus_ftp_client_restart_marker_plugin_init(&plugin, marker_begin_cb, marker_cb, marker_complete_cb, k);

    session_t s;
    session_open(&s, &plugin);
    apply_mode(&s.attr, o->streams > 0 ? o->streams : 1);
    if (o->allo)
        globus_ftp_client_operationattr_set_allocate(&s.attr, (globus_off_t)len);
    writer_t *w = malloc(sizeof *w);
    writer_init(w, data);
    writer_pieces(w, 0, (globus_off_t)len);
    w->hold_at = w->pieces / 2;
    if (!started(globus_ftp_client_put(&s.handle, url, &s.attr, NULL, complete_cb, &s.mon), "put"))
        return 1;
    write_next(w, &s.handle);

    /* Wait (bounded) for the first half to be written and a marker to name some of it. */
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 12; /* the Globus server's marker period is 5 s */
    globus_abstime_t until;
    until.tv_sec = deadline.tv_sec;
    until.tv_nsec = deadline.tv_nsec;
    globus_mutex_lock(&k->lock);
    while (k->n == 0) {
        if (globus_cond_timedwait(&k->cond, &k->lock, &until) == ETIMEDOUT)
            break;
    }
    int have = k->n;
    globus_mutex_unlock(&k->lock);
    if (!have) {
        fprintf(stderr, "error: no restart marker within 12 s of sending half the file\n");
        globus_ftp_client_abort(&s.handle);
        monitor_wait(&s.mon, "aborted put");
        return 1;
    }
    globus_ftp_client_abort(&s.handle);
    monitor_wait(&s.mon, "aborted put"); /* an error is expected here */

    /* Markers that arrived with the abort count too. */
    globus_ftp_client_restart_marker_t marker;
    globus_ftp_client_restart_marker_init(&marker);
    writer_t *w2 = malloc(sizeof *w2);
    writer_init(w2, data);
    globus_mutex_lock(&k->lock);
    /* sort the merged ranges, then send their complement */
    for (int i = 0; i < k->n; i++)
        for (int j = i + 1; j < k->n; j++)
            if (k->start[j] < k->start[i]) {
                globus_off_t t = k->start[i];
                k->start[i] = k->start[j];
                k->start[j] = t;
                t = k->end[i];
                k->end[i] = k->end[j];
                k->end[j] = t;
            }
    printf("marker");
    globus_off_t at = 0, kept = 0;
    for (int i = 0; i < k->n; i++) {
        printf("%s%lld-%lld", i ? "," : " ", (long long)k->start[i], (long long)k->end[i]);
        globus_ftp_client_restart_marker_insert_range(&marker, k->start[i], k->end[i]);
        writer_pieces(w2, at, k->start[i]);
        kept += k->end[i] - k->start[i];
        at = k->end[i];
    }
    printf("\n");
    globus_mutex_unlock(&k->lock);
    writer_pieces(w2, at, (globus_off_t)len);
    writer_finish_plan(w2, at);
    printf("resent %lld\n", (long long)len - kept);
    fflush(stdout);

    session_t s2;
    session_open(&s2, NULL);
    apply_mode(&s2.attr, o->streams > 0 ? o->streams : 1);
    if (o->allo)
        globus_ftp_client_operationattr_set_allocate(&s2.attr, (globus_off_t)len);
    if (!started(globus_ftp_client_put(&s2.handle, url, &s2.attr, &marker, complete_cb, &s2.mon), "restarted put"))
        return 1;
    write_next(w2, &s2.handle);
    return monitor_wait(&s2.mon, "restarted put");
}

static void usage(void)
{
    fprintf(stderr, "usage: ftpcheck exists|size|mlst|mlsd|put|get|pput|pget|3pt|p3pt|pipe|restart-put ...\n");
    exit(2);
}

int main(int argc, char **argv)
{
    if (argc < 3)
        usage();
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (globus_module_activate(GLOBUS_FTP_CLIENT_MODULE) != GLOBUS_SUCCESS ||
        globus_module_activate(GLOBUS_FTP_CLIENT_RESTART_MARKER_PLUGIN_MODULE) != GLOBUS_SUCCESS) {
        fprintf(stderr, "ftpcheck: cannot activate the Globus FTP client modules\n");
        return 2;
    }
    const char *op = argv[1];
    options_t o;
    int rc;
    if (strcmp(op, "exists") == 0)
        rc = op_exists(argv[2]);
    else if (strcmp(op, "size") == 0)
        rc = op_size(argv[2]);
    else if (strcmp(op, "mlst") == 0)
        rc = op_mlst(argv[2]);
    else if (strcmp(op, "mlsd") == 0)
        rc = op_mlsd(argv[2]);
    else if (argc < 4)
        usage(), rc = 2;
    else if (strcmp(op, "put") == 0) {
        parse_options(argc, argv, 4, &o);
        rc = op_put(argv[2], argv[3], &o, 0, 0, 0);
    } else if (strcmp(op, "get") == 0) {
        parse_options(argc, argv, 4, &o);
        rc = op_get(argv[2], argv[3], &o, 0, 0, 0);
    } else if (strcmp(op, "3pt") == 0) {
        parse_options(argc, argv, 4, &o);
        rc = op_3pt(argv[2], argv[3], &o, 0, 0, 0);
    } else if (strcmp(op, "restart-put") == 0) {
        parse_options(argc, argv, 4, &o);
        rc = op_restart_put(argv[2], argv[3], &o);
    } else if (strcmp(op, "pipe") == 0 && argc > 4) {
        rc = op_pipe(argv[2], argv[3], argv + 4, argc - 4);
    } else if (argc >= 6 && (strcmp(op, "pput") == 0 || strcmp(op, "pget") == 0 || strcmp(op, "p3pt") == 0)) {
        globus_off_t from = strtoll(argv[4], NULL, 10), to = strtoll(argv[5], NULL, 10);
        parse_options(argc, argv, 6, &o);
        if (op[1] == 'p')
            rc = op_put(argv[2], argv[3], &o, from, to, 1);
        else if (op[1] == 'g')
            rc = op_get(argv[2], argv[3], &o, from, to, 1);
        else
            rc = op_3pt(argv[2], argv[3], &o, from, to, 1);
    } else {
        usage();
        rc = 2;
    }
    globus_module_deactivate_all();
    return rc;
}
