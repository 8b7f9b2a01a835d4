/* A batch of small local files copied, made durable, verified and published
 * in one call, so that the per-file loop runs outside the Python interpreter
 * (which releases its lock around the call).  See batchcopy.py for the
 * promise each step keeps and for what the caller does with a failure. */

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "batchcopy.h"

/* CRC32C (Castagnoli, reflected 0x82F63B78), the value the crc32c package
 * computes: the SSE4.2 instruction where the CPU has it, else a table. */
static uint32_t crc_table[8][256];

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++) crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
}

static uint32_t crc_soft(uint32_t crc, const unsigned char *p, size_t n) {
    crc = ~crc;
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        v ^= crc;
        crc = crc_table[7][v & 0xff] ^ crc_table[6][(v >> 8) & 0xff] ^ crc_table[5][(v >> 16) & 0xff] ^
              crc_table[4][(v >> 24) & 0xff] ^ crc_table[3][(v >> 32) & 0xff] ^ crc_table[2][(v >> 40) & 0xff] ^
              crc_table[1][(v >> 48) & 0xff] ^ crc_table[0][v >> 56];
        p += 8;
        n -= 8;
    }
    while (n--) crc = (crc >> 8) ^ crc_table[0][(crc ^ *p++) & 0xff];
    return ~crc;
}

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t crc, const unsigned char *p, size_t n) {
    uint64_t c = ~crc;
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = __builtin_ia32_crc32di(c, v);
        p += 8;
        n -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (n--) c32 = __builtin_ia32_crc32qi(c32, *p++);
    return ~c32;
}
#endif

static int crc_mode = -1; /* -1 unknown, 0 table, 1 hardware */

uint32_t tc_crc32c(uint32_t crc, const unsigned char *p, size_t n) {
    if (crc_mode < 0) {
        crc_init();
#if defined(__x86_64__) && defined(__GNUC__)
        __builtin_cpu_init();
        crc_mode = __builtin_cpu_supports("sse4.2") ? 1 : 0;
#else
        crc_mode = 0;
#endif
    }
#if defined(__x86_64__) && defined(__GNUC__)
    if (crc_mode == 1) return crc_hw(crc, p, n);
#endif
    return crc_soft(crc, p, n);
}

int tc_crc32c_hardware(void) {
    tc_crc32c(0, (const unsigned char *)"", 0);
    return crc_mode;
}

static int fail(tc_item *it, int stage, int err) {
    it->stage = stage;
    it->err = err;
    return -1;
}

static int read_all(int fd, unsigned char *buf, int64_t size, int64_t *got) {
    int64_t done = 0;
    while (done < size) {
        ssize_t r = pread(fd, buf + done, (size_t)(size - done), done);
        if (r < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (r == 0) break;
        done += r;
    }
    *got = done;
    return 0;
}

static int same_source(const struct stat *st, const tc_item *it) {
    return S_ISREG(st->st_mode) && (int64_t)st->st_size == it->size &&
           (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec == it->mtime_ns &&
           (uint64_t)st->st_dev == it->dev && (uint64_t)st->st_ino == it->ino;
}

/* A directory open for the *at() calls of the files in it.  A tree's paths
 * are long (tens of components): resolved once a directory, not in each of
 * a file's five calls by name, and every step of a file acts in the one
 * directory that was opened (its partial file and its final name included). */
typedef struct {
    const char *path; /* (not NUL-terminated at len) */
    size_t len;
    int fd;
    int err;
} tc_dir;

/* The part of ``path`` after its directory ``dir`` and a slash, or NULL
 * when ``path`` does not name an entry of ``dir``. */
static const char *entry_of(const char *path, const char *dir, size_t len) {
    if (len == 1 && dir[0] == '/') len = 0; /* the root: "/name" */
    if (strncmp(path, dir, len) != 0 || path[len] != '/') return NULL;
    const char *name = path + len + 1;
    return *name != '\0' && strchr(name, '/') == NULL ? name : NULL;
}

/* ``d`` opened on the directory ``path[0:len]`` (kept while its neighbours
 * share it); 0, or -1 with errno set.  ``opened`` collects every descriptor
 * for the batch to close. */
static int open_dir(tc_dir *d, const char *path, size_t len, int *opened, int *nopened) {
    if (d->path != NULL && d->len == len && memcmp(d->path, path, len) == 0) {
        errno = d->err;
        return d->fd >= 0 ? 0 : -1;
    }
    char name[4096];
    if (len >= sizeof name) {
        d->path = NULL;
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(name, path, len);
    name[len] = '\0';
    d->path = path;
    d->len = len;
    d->fd = open(len ? name : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    d->err = d->fd < 0 ? errno : 0;
    if (d->fd < 0) return -1;
    opened[(*nopened)++] = d->fd;
    return 0;
}

/* Step 1 for one file: read the source whole (unchanged before and after),
 * checksum it, write it under its hidden partial name with its permissions
 * and time.  Leaves the partial file open in it->fd. */
static int copy_one(tc_item *it, unsigned char *buf, tc_dir *sdir, tc_dir *ddir, int *opened, int *nopened) {
    it->fd = -1;
    const char *slash = strrchr(it->src, '/');
    if (slash == NULL) return fail(it, TC_SOURCE, EINVAL);
    const char *sname = slash + 1;
    if (open_dir(sdir, it->src, (size_t)(slash - it->src), opened, nopened) != 0) return fail(it, TC_SOURCE, errno);
    size_t dlen = strlen(it->dir);
    it->partial_name = entry_of(it->partial, it->dir, dlen);
    it->final_name = entry_of(it->final, it->dir, dlen);
    if (it->partial_name == NULL || it->final_name == NULL) return fail(it, TC_DEST, EINVAL);
    if (open_dir(ddir, it->dir, dlen, opened, nopened) != 0) return fail(it, TC_DEST, errno);
    it->dirfd = ddir->fd;
    int src = openat(sdir->fd, sname, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (src < 0) return fail(it, TC_SOURCE, errno);
    struct stat st;
    int64_t got = 0;
    if (fstat(src, &st) != 0) {
        int e = errno;
        close(src);
        return fail(it, TC_SOURCE, e);
    }
    if (!same_source(&st, it)) {
        close(src);
        return fail(it, TC_CHANGED, 0);
    }
    if (read_all(src, buf, it->size, &got) != 0) {
        int e = errno;
        close(src);
        return fail(it, TC_SOURCE, e);
    }
    close(src);
    /* Unchanged while it was read: the name still leads to the same file, with
     * the same size and time (as the per-file path checks with lstat). */
    if (got != it->size || fstatat(sdir->fd, sname, &st, AT_SYMLINK_NOFOLLOW) != 0 || !same_source(&st, it))
        return fail(it, TC_CHANGED, 0);
    it->crc = tc_crc32c(0, buf, (size_t)it->size);
    int fd = openat(it->dirfd, it->partial_name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0) return fail(it, TC_DEST, errno);
    it->fd = fd;
    int64_t done = 0;
    while (done < it->size) {
        ssize_t w = pwrite(fd, buf + done, (size_t)(it->size - done), done);
        if (w < 0) {
            if (errno == EINTR) continue;
            return fail(it, TC_DEST, errno);
        }
        done += w;
    }
    struct timespec times[2] = {{it->mtime_ns / 1000000000, it->mtime_ns % 1000000000},
                                {it->mtime_ns / 1000000000, it->mtime_ns % 1000000000}};
    if (fchmod(fd, it->mode & 07777) != 0) return fail(it, TC_DEST, errno);
    if (futimens(fd, times) != 0) return fail(it, TC_DEST, errno);
    return 0;
}

/* Step 3 for one file: read the durable bytes back and compare checksums. */
static int verify_one(tc_item *it, unsigned char *buf, int64_t drop_from) {
    int64_t got = 0;
    if (read_all(it->fd, buf, it->size, &got) != 0) return fail(it, TC_VERIFY, errno);
    if (got != it->size) return fail(it, TC_VERIFY, EIO);
    uint32_t crc = tc_crc32c(0, buf, (size_t)it->size);
    /* Clean pages no write touches again: a copy of larger files does not
     * fill the cache (small ones are left to the kernel: a call each would
     * cost more than the pages). */
    if (it->size >= drop_from) posix_fadvise(it->fd, 0, 0, POSIX_FADV_DONTNEED);
    if (crc != it->crc) {
        it->got_crc = crc;
        return fail(it, TC_MISMATCH, 0);
    }
    return 0;
}

/* Which files of the batch a syncfs of the file system on device ``dev``
 * makes durable: those whose directory is on it (a directory is asked once
 * per run of neighbours). */
static void mark_devices(tc_item *items, int n, dev_t dev) {
    int last = -1;
    int last_on = 0;
    for (int i = 0; i < n; i++) {
        tc_item *it = &items[i];
        if (it->stage != TC_OK) continue;
        if (it->dirfd != last) {
            struct stat st;
            last = it->dirfd;
            last_on = fstat(it->dirfd, &st) == 0 && st.st_dev == dev;
        }
        it->covered = last_on;
    }
}

static void drop(tc_item *it) {
    if (it->fd >= 0) {
        close(it->fd);
        it->fd = -1;
    }
}

static void abandon(tc_item *it) {
    int had = it->fd >= 0;
    drop(it);
    /* only a partial file this batch created (it->fd was open) is removed */
    if (had) unlinkat(it->dirfd, it->partial_name, 0);
}

int tc_bind_paths(tc_item *items, int n, const char *strings, size_t len) {
    /* Four NUL-terminated strings an item, in the order of the struct; one
     * buffer for the batch (one Python object, not four a file). */
    const char *p = strings, *end = strings + len;
    for (int i = 0; i < n; i++) {
        const char **fields[4] = {&items[i].src, &items[i].partial, &items[i].final, &items[i].dir};
        for (int k = 0; k < 4; k++) {
            const char *nul = p < end ? memchr(p, '\0', (size_t)(end - p)) : NULL;
            if (nul == NULL) return -1;
            *fields[k] = p;
            p = nul + 1;
        }
    }
    return p == end ? 0 : -1;
}

int tc_copy_batch(tc_item *items, int n, int use_syncfs, int verify, int64_t drop_from) {
    int64_t largest = 1;
    for (int i = 0; i < n; i++) {
        items[i].stage = TC_OK;
        items[i].err = 0;
        items[i].fd = -1;
        items[i].dst_dev = items[i].dst_ino = 0;
        items[i].covered = items[i].dir_synced = 0;
        items[i].dst_mtime_ns = items[i].dst_ctime_ns = 0;
        items[i].dirfd = -1;
        items[i].partial_name = items[i].final_name = NULL;
        if (items[i].size > largest) largest = items[i].size;
    }
    unsigned char *buf = malloc((size_t)largest);
    int *opened = malloc(sizeof(int) * (size_t)(2 * n + 1));
    if (buf == NULL || opened == NULL) {
        free(buf);
        free(opened);
        return -ENOMEM;
    }
    int nopened = 0;
    tc_dir sdir = {NULL, 0, -1, 0}, ddir = {NULL, 0, -1, 0};

    /* 1. every file written under its hidden name */
    int any = -1;
    for (int i = 0; i < n; i++) {
        if (copy_one(&items[i], buf, &sdir, &ddir, opened, &nopened) != 0) {
            if (items[i].fd >= 0) abandon(&items[i]);
        } else if (any < 0) {
            any = i;
        }
    }
    /* 2. one durable point for the batch: a syncfs of the file system (where it
     * is known to reach the media), else every file's data and inode synced.
     * A destination tree may hold a mount point: a file whose directory is on
     * another device than the syncfs reached is synced on its own. */
    dev_t fs_dev = 0;
    int by_syncfs = 0;
    if (any >= 0 && use_syncfs) {
        struct stat st;
        if (fstat(items[any].fd, &st) == 0) {
            fs_dev = st.st_dev;
            by_syncfs = syncfs(items[any].fd) == 0 ? 1 : -errno;
        } else {
            by_syncfs = -errno;
        }
        if (by_syncfs < 0)
            for (int i = 0; i < n; i++)
                if (items[i].stage == TC_OK) {
                    fail(&items[i], TC_SYNC, -by_syncfs);
                    abandon(&items[i]);
                }
    }
    if (by_syncfs > 0) mark_devices(items, n, fs_dev);
    for (int i = 0; i < n && by_syncfs >= 0 && any >= 0; i++)
        if (items[i].stage == TC_OK && !items[i].covered && fsync(items[i].fd) != 0) {
            fail(&items[i], TC_SYNC, errno);
            abandon(&items[i]);
        }
    /* 3. read back and compared; 4. published under the final name */
    for (int i = 0; i < n; i++) {
        tc_item *it = &items[i];
        if (it->stage != TC_OK) continue;
        if (verify && verify_one(it, buf, drop_from) != 0) {
            abandon(it);
            continue;
        }
        if (renameat(it->dirfd, it->partial_name, it->dirfd, it->final_name) != 0) {
            fail(it, TC_PUBLISH, errno);
            abandon(it);
            continue;
        }
        struct stat st;
        if (fstat(it->fd, &st) == 0) {
            it->dst_dev = (uint64_t)st.st_dev;
            it->dst_ino = (uint64_t)st.st_ino;
            it->dst_mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
            it->dst_ctime_ns = (int64_t)st.st_ctim.tv_sec * 1000000000 + st.st_ctim.tv_nsec;
        }
        drop(it);
    }
    free(buf);
    /* 5. the new names durable: with syncfs, one more syncfs for every
     * directory on its device at once (a directory's sync costs a journal
     * commit as a syncfs does); each other directory synced once (the batch
     * comes in path order, so a directory's files are neighbours) */
    if (by_syncfs > 0) {
        int first = -1, dirs = 0;
        for (int i = 0; i < n && dirs < 2; i++)
            if (items[i].stage == TC_OK && items[i].covered &&
                (first < 0 || strcmp(items[first].dir, items[i].dir) != 0)) {
                if (first < 0) first = i;
                dirs++;
            }
        if (dirs > 1) {
            int err = syncfs(items[first].dirfd) != 0 ? errno : 0;
            for (int i = 0; i < n; i++)
                if (items[i].stage == TC_OK && items[i].covered) {
                    if (err) fail(&items[i], TC_DIRSYNC, err);
                    else items[i].dir_synced = 1;
                }
        }
    }
    const char *synced = NULL;
    for (int i = 0; i < n; i++) {
        tc_item *it = &items[i];
        if (it->stage != TC_OK || it->dir_synced) continue;
        if (synced != NULL && strcmp(synced, it->dir) == 0) continue;
        int err = fsync(it->dirfd) != 0 ? errno : 0;
        synced = it->dir;
        if (err) {
            /* Renamed but not known durable: none of this directory's files is
             * reported published (a rerun finds them and checks them). */
            for (int j = i; j < n; j++)
                if (items[j].stage == TC_OK && strcmp(items[j].dir, it->dir) == 0) fail(&items[j], TC_DIRSYNC, err);
            synced = NULL;
        }
    }
    for (int i = 0; i < nopened; i++) close(opened[i]);
    free(opened);
    for (int i = 0; i < n; i++) items[i].dirfd = -1;
    return 0;
}
