/*
 * The floor a durable 226 sets inside the real Globus GridFTP server: a
 * storage module (DSI) with nothing but what the promise needs, in C, for
 * benchmarks/floor_server.py.  Not part of transfercore.
 *
 * Each STOR is received into a hidden name beside its target
 * (created exclusively), its bytes written where they arrive; after the last
 * block the file is flushed, renamed to its name and its directory flushed,
 * and only then does the server send the 226: what every transfercore 226
 * promises, with no Python, no driver, no resume record and no marker.  A
 * partial upload (ESTO) or a restart is refused; with ALLO no byte may lie
 * past the announced size and every one must have come.  With the option "none" the two
 * flushes are left out (the same server doing the same work, nothing made
 * durable), which shows what the module itself costs against the server's
 * built-in storage.
 *
 * The option string (-dsi floor:MODE:ROOT): MODE is "durable" or "none";
 * ROOT is the directory served as "/".
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <globus_gridftp_server.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    char root[PATH_MAX];
    int durable;
} floor_session_t;

typedef struct {
    globus_gfs_operation_t op;
    int fd;
    globus_off_t size;
    globus_size_t block;
    int durable;
    pthread_mutex_t lock;
    int pending;
    int eof;
    int failed;
    char error[512];
    globus_off_t received;
    int nbufs;
    globus_byte_t **bufs;
    char part[PATH_MAX];
    char final[PATH_MAX];
    char dir[PATH_MAX];
} floor_upload_t;

static globus_result_t
floor_error(int code, const char *message)
{
    return GlobusGFSErrorFtpResponse(NULL, code, "FLOOR", "%s", message);
}

static int
floor_path(floor_session_t *s, const char *path, char *out, size_t len)
{
    /* the benchmark's own client sends plain absolute paths */
    if (path == NULL || path[0] != '/' || strstr(path, "/..") != NULL)
        return -1;
    return snprintf(out, len, "%s%s", s->root, path) < (int) len ? 0 : -1;
}

static void
floor_init(globus_gfs_operation_t op, globus_gfs_session_info_t *info)
{
    floor_session_t *s = calloc(1, sizeof(*s));
    char *options = NULL;
    char *root;

    (void) info;
    globus_gridftp_server_get_config_string(op, &options);
    root = options != NULL ? strchr(options, ':') : NULL;
    if (s == NULL || root == NULL || strlen(root + 1) >= sizeof(s->root)) {
        free(s);
        free(options);
        globus_gridftp_server_finished_session_start(
            op, floor_error(530, "the floor DSI needs -dsi floor:durable|none:ROOT"), NULL, NULL, NULL);
        return;
    }
    s->durable = strncmp(options, "durable:", 8) == 0;
    strcpy(s->root, root + 1);
    free(options);
    globus_gridftp_server_finished_session_start(op, GLOBUS_SUCCESS, s, NULL, "/");
}

static void
floor_destroy(void *arg)
{
    free(arg);
}

static void
floor_fill(globus_gfs_stat_t *out, const char *name, const struct stat *st)
{
    memset(out, 0, sizeof(*out));
    out->mode = (int) st->st_mode;
    out->nlink = (int) st->st_nlink;
    out->name = strdup(name);
    out->uid = st->st_uid;
    out->gid = st->st_gid;
    out->size = st->st_size;
    out->atime = st->st_atime;
    out->ctime = st->st_ctime;
    out->mtime = st->st_mtime;
    out->dev = (int) st->st_dev;
    out->ino = (int) st->st_ino;
}

static void
floor_stat(globus_gfs_operation_t op, globus_gfs_stat_info_t *info, void *arg)
{
    char path[PATH_MAX], child[PATH_MAX];
    globus_gfs_stat_t *array = NULL;
    struct stat st;
    int count = 0, cap = 0, i;
    const char *base;
    DIR *dir;
    struct dirent *entry;

    if (floor_path(arg, info->pathname, path, sizeof(path)) != 0) {
        globus_gridftp_server_finished_stat(op, floor_error(553, "bad path"), NULL, 0);
        return;
    }
    if (lstat(path, &st) != 0) {
        globus_gridftp_server_finished_stat(op, floor_error(550, strerror(errno)), NULL, 0);
        return;
    }
    if (!S_ISDIR(st.st_mode) || info->file_only) {
        globus_gfs_stat_t one;
        base = strrchr(info->pathname, '/');
        floor_fill(&one, base != NULL && base[1] != '\0' ? base + 1 : info->pathname, &st);
        globus_gridftp_server_finished_stat(op, GLOBUS_SUCCESS, &one, 1);
        free(one.name);
        return;
    }
    dir = opendir(path);
    while (dir != NULL && (entry = readdir(dir)) != NULL) {
        if (snprintf(child, sizeof(child), "%s/%s", path, entry->d_name) >= (int) sizeof(child)
                || lstat(child, &st) != 0)
            continue;
        if (count == cap) {
            globus_gfs_stat_t *more = realloc(array, sizeof(*array) * (size_t) (cap ? 2 * cap : 64));
            if (more == NULL)
                break;
            array = more;
            cap = cap ? 2 * cap : 64;
        }
        floor_fill(&array[count++], entry->d_name, &st);
    }
    if (dir != NULL)
        closedir(dir);
    globus_gridftp_server_finished_stat(op, GLOBUS_SUCCESS, array, count);
    for (i = 0; i < count; i++)
        free(array[i].name);
    free(array);
}

static void
floor_command(globus_gfs_operation_t op, globus_gfs_command_info_t *info, void *arg)
{
    char path[PATH_MAX];

    if (info->command != GLOBUS_GFS_CMD_MKD) {
        globus_gridftp_server_finished_command(op, floor_error(502, "the floor DSI makes directories only"), NULL);
        return;
    }
    if (floor_path(arg, info->pathname, path, sizeof(path)) != 0 || mkdir(path, 0755) != 0) {
        globus_gridftp_server_finished_command(op, floor_error(550, strerror(errno ? errno : EINVAL)), NULL);
        return;
    }
    globus_gridftp_server_finished_command(op, GLOBUS_SUCCESS, NULL);
}

static void
floor_free(floor_upload_t *u)
{
    int i;

    for (i = 0; i < u->nbufs; i++)
        free(u->bufs[i]);
    free(u->bufs);
    pthread_mutex_destroy(&u->lock);
    free(u);
}

/* After the last block: durable, then published, then the 226. */
static void
floor_finish(floor_upload_t *u)
{
    globus_result_t result = GLOBUS_SUCCESS;
    int dfd;

    if (!u->failed && u->size >= 0 && u->received != u->size)
        snprintf(u->error, sizeof(u->error), "%lld of %lld bytes arrived", (long long) u->received,
                 (long long) u->size), u->failed = 1;
    if (!u->failed && u->durable && fsync(u->fd) != 0)
        snprintf(u->error, sizeof(u->error), "fsync: %s", strerror(errno)), u->failed = 1;
    close(u->fd);
    if (!u->failed && rename(u->part, u->final) != 0)
        snprintf(u->error, sizeof(u->error), "rename: %s", strerror(errno)), u->failed = 1;
    if (!u->failed && u->durable) {
        dfd = open(u->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0 || fsync(dfd) != 0)
            snprintf(u->error, sizeof(u->error), "directory fsync: %s", strerror(errno)), u->failed = 1;
        if (dfd >= 0)
            close(dfd);
    }
    if (u->failed) {
        unlink(u->part);
        result = floor_error(451, u->error);
    }
    globus_gridftp_server_finished_transfer(u->op, result);
    floor_free(u);
}

static void
floor_read_cb(globus_gfs_operation_t op, globus_result_t result, globus_byte_t *buf, globus_size_t nbytes,
              globus_off_t offset, globus_bool_t eof, void *arg)
{
    floor_upload_t *u = arg;
    globus_size_t pos = 0;
    int again, done;

    (void) op;
    if (result != GLOBUS_SUCCESS) {
        pthread_mutex_lock(&u->lock);
        u->failed = 1;
        snprintf(u->error, sizeof(u->error), "the data connection failed");
        pthread_mutex_unlock(&u->lock);
    } else if (nbytes > 0) {
        if (offset < 0 || (u->size >= 0 && offset + (globus_off_t) nbytes > u->size)) {
            pthread_mutex_lock(&u->lock);
            u->failed = 1;
            snprintf(u->error, sizeof(u->error), "data past the announced size");
            pthread_mutex_unlock(&u->lock);
        } else {
            while (pos < nbytes) {
                ssize_t n = pwrite(u->fd, buf + pos, nbytes - pos, offset + (globus_off_t) pos);
                if (n <= 0 && errno == EINTR)
                    continue;
                if (n <= 0) {
                    pthread_mutex_lock(&u->lock);
                    u->failed = 1;
                    snprintf(u->error, sizeof(u->error), "pwrite: %s", strerror(errno));
                    pthread_mutex_unlock(&u->lock);
                    break;
                }
                pos += (globus_size_t) n;
            }
            globus_gridftp_server_update_bytes_recvd(u->op, (globus_off_t) pos);
        }
    }
    pthread_mutex_lock(&u->lock);
    u->received += (globus_off_t) nbytes;
    u->pending--;
    if (eof)
        u->eof = 1;
    again = !u->eof && !u->failed;
    if (again)
        u->pending++;
    pthread_mutex_unlock(&u->lock);
    if (again && globus_gridftp_server_register_read(u->op, buf, u->block, floor_read_cb, u) == GLOBUS_SUCCESS)
        return;
    pthread_mutex_lock(&u->lock);
    if (again) {
        u->pending--;
        u->failed = 1;
        snprintf(u->error, sizeof(u->error), "the server refused a data read");
    }
    done = u->pending == 0;
    pthread_mutex_unlock(&u->lock);
    if (done)
        floor_finish(u);
}

static void
floor_recv(globus_gfs_operation_t op, globus_gfs_transfer_info_t *info, void *arg)
{
    floor_session_t *s = arg;
    floor_upload_t *u;
    globus_size_t block = 0;
    int concurrency = 1, i, registered = 0, done;
    char *slash;

    if (!info->truncate || info->partial_offset > 0) {
        globus_gridftp_server_finished_transfer(op, floor_error(504, "the floor DSI takes whole uploads only"));
        return;
    }
    u = calloc(1, sizeof(*u));
    if (u == NULL || floor_path(s, info->pathname, u->final, sizeof(u->final)) != 0) {
        free(u);
        globus_gridftp_server_finished_transfer(op, floor_error(553, "bad path"));
        return;
    }
    pthread_mutex_init(&u->lock, NULL);
    u->op = op;
    u->size = info->alloc_size > 0 ? info->alloc_size : -1;  /* -1: not announced (-pp sends no ALLO) */
    u->durable = s->durable;
    strcpy(u->dir, u->final);
    slash = strrchr(u->dir, '/');
    *slash = '\0';
    if (snprintf(u->part, sizeof(u->part), "%s/.%s.floor", u->dir, slash + 1) >= (int) sizeof(u->part)
            || (u->fd = open(u->part, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644)) < 0) {
        globus_gridftp_server_finished_transfer(op, floor_error(553, strerror(errno)));
        floor_free(u);
        return;
    }
    globus_gridftp_server_get_write_range(op, NULL, NULL);
    globus_gridftp_server_get_optimal_concurrency(op, &concurrency);
    globus_gridftp_server_get_block_size(op, &block);
    if (concurrency < 1)
        concurrency = 1;
    /* no block lies past the announced size (as the transfercore DSI sizes a small upload's reads) */
    if (block == 0)
        block = 256 * 1024;
    u->block = u->size < 0 || block < (globus_size_t) u->size ? block : (globus_size_t) u->size;
    u->bufs = calloc((size_t) concurrency, sizeof(*u->bufs));
    globus_gridftp_server_begin_transfer(op, 0, NULL);
    pthread_mutex_lock(&u->lock);
    u->pending = concurrency;
    pthread_mutex_unlock(&u->lock);
    for (i = 0; i < concurrency; i++) {
        globus_byte_t *buf = u->bufs != NULL ? malloc(u->block) : NULL;
        if (buf != NULL) {
            u->bufs[u->nbufs++] = buf;
            if (globus_gridftp_server_register_read(op, buf, u->block, floor_read_cb, u) == GLOBUS_SUCCESS) {
                registered++;
                continue;
            }
        }
        pthread_mutex_lock(&u->lock);
        u->pending--;
        u->failed = 1;
        snprintf(u->error, sizeof(u->error), "no data read could be registered");
        done = u->pending == 0;
        pthread_mutex_unlock(&u->lock);
        if (done)
            floor_finish(u);
    }
    (void) registered;
}

static void
floor_send(globus_gfs_operation_t op, globus_gfs_transfer_info_t *info, void *arg)
{
    (void) info;
    (void) arg;
    globus_gridftp_server_finished_transfer(op, floor_error(502, "the floor DSI takes uploads only"));
}

static globus_gfs_storage_iface_t floor_iface = {
    GLOBUS_GFS_DSI_DESCRIPTOR_BLOCKING,
    floor_init,
    floor_destroy,
    NULL,
    floor_send,
    floor_recv,
    NULL, NULL, NULL, NULL,
    floor_command,
    floor_stat,
    NULL, NULL, NULL
};

static int floor_activate(void);
static int floor_deactivate(void);
static globus_version_t floor_version = {0, 1, 0, 0};

GlobusExtensionDefineModule(globus_gridftp_server_floor) = {
    "globus_gridftp_server_floor", floor_activate, floor_deactivate, NULL, NULL, &floor_version
};

static int
floor_activate(void)
{
    globus_extension_registry_add(GLOBUS_GFS_DSI_REGISTRY, "floor",
                                  GlobusExtensionMyModule(globus_gridftp_server_floor), &floor_iface);
    return GLOBUS_SUCCESS;
}

static int
floor_deactivate(void)
{
    globus_extension_registry_remove(GLOBUS_GFS_DSI_REGISTRY, "floor");
    return GLOBUS_SUCCESS;
}
