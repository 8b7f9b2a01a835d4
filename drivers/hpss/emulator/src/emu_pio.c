/* Parallel I/O of the emulator: a coordinator group that executes
 * transfers, and participant groups (imported from its export) whose
 * threads block in hpss_PIORegister and move each block through the
 * registered callback.  The participant thread does the file I/O itself;
 * hpss_PIOExecute waits for it, makes the moved bytes durable, and only
 * then returns them as moved. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "emu_internal.h"

#define EXPORT_MAGIC "EMUPIOG1"

typedef struct emu_group {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs;
    unsigned long id;
    struct emu_group *next;
    hpss_pio_params_t params;

    int registered;
    int ended;
    int register_rc; /* what Register returns once the group ends */

    /* The job handed from Execute to the participant. */
    int job_pending;
    int job_done;
    int job_fd;
    u_signed64 job_off;
    u_signed64 job_len;
    u_signed64 job_moved;
    int job_rc;

    u_signed64 moved_total; /* bytes this group moved, for the fault settings */
} emu_group_t;

struct emu_pio_handle {
    emu_group_t *g;
    int coordinator;
    int ended;
};

static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static emu_group_t *registry;
static unsigned long next_id = 1;

static void group_release(emu_group_t *g)
{
    pthread_mutex_lock(&registry_mu);
    int last = --g->refs == 0;
    if (last) {
        for (emu_group_t **p = &registry; *p; p = &(*p)->next)
            if (*p == g) {
                *p = g->next;
                break;
            }
    }
    pthread_mutex_unlock(&registry_mu);
    if (last) {
        pthread_mutex_destroy(&g->mu);
        pthread_cond_destroy(&g->cv);
        free(g);
    }
}

int hpss_PIOStart(hpss_pio_params_t *InputParams, hpss_pio_grp_t *StripeGroup)
{
    if (!emu_logged_in())
        return HPSS_EPERM;
    if (InputParams == NULL || StripeGroup == NULL)
        return HPSS_EFAULT;
    if ((InputParams->Operation != HPSS_PIO_READ && InputParams->Operation != HPSS_PIO_WRITE) ||
        InputParams->BlockSize == 0 || InputParams->ClntStripeWidth != 1)
        return HPSS_EINVAL;
    emu_group_t *g = calloc(1, sizeof *g);
    struct emu_pio_handle *h = calloc(1, sizeof *h);
    if (g == NULL || h == NULL) {
        free(g);
        free(h);
        return -ENOMEM;
    }
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    g->params = *InputParams;
    g->refs = 1;
    pthread_mutex_lock(&registry_mu);
    g->id = next_id++;
    g->next = registry;
    registry = g;
    pthread_mutex_unlock(&registry_mu);
    h->g = g;
    h->coordinator = 1;
    *StripeGroup = h;
    return 0;
}

int hpss_PIOExportGrp(const hpss_pio_grp_t StripeGroup, void **Buffer, unsigned int *BufLength)
{
    if (StripeGroup == NULL || Buffer == NULL || BufLength == NULL)
        return HPSS_EFAULT;
    if (!StripeGroup->coordinator || StripeGroup->ended)
        return HPSS_EINVAL;
    char *buf = malloc(64);
    if (buf == NULL)
        return -ENOMEM;
    int n = snprintf(buf, 64, "%s:%lu", EXPORT_MAGIC, StripeGroup->g->id);
    *Buffer = buf;
    *BufLength = (unsigned int)n + 1;
    return 0;
}

int hpss_PIOImportGrp(const void *Buffer, unsigned int BufLength, hpss_pio_grp_t *StripeGroup)
{
    if (Buffer == NULL || StripeGroup == NULL)
        return HPSS_EFAULT;
    const char *text = Buffer;
    size_t magic = strlen(EXPORT_MAGIC);
    if (BufLength < magic + 2 || memchr(text, '\0', BufLength) == NULL || strncmp(text, EXPORT_MAGIC, magic) != 0 ||
        text[magic] != ':')
        return HPSS_EINVAL;
    unsigned long id = strtoul(text + magic + 1, NULL, 10);
    struct emu_pio_handle *h = calloc(1, sizeof *h);
    if (h == NULL)
        return -ENOMEM;
    pthread_mutex_lock(&registry_mu);
    emu_group_t *g = registry;
    while (g != NULL && g->id != id)
        g = g->next;
    if (g != NULL)
        g->refs++;
    pthread_mutex_unlock(&registry_mu);
    if (g == NULL) {
        free(h);
        return HPSS_EINVAL;
    }
    h->g = g;
    *StripeGroup = h;
    return 0;
}

/* Move one job's blocks through the callback; called without the lock. */
static void run_job(emu_group_t *g, void *data_buf, hpss_pio_cb_t cb, void *cb_arg, void **write_buf)
{
    const int writing = g->params.Operation == HPSS_PIO_WRITE;
    const u_signed64 block = g->params.BlockSize;
    const u_signed64 end = g->job_off + g->job_len;
    const u_signed64 fail_after = writing ? emu_setting_u64("HPSS_EMU_FAIL_AFTER", UINT64_MAX) : UINT64_MAX;
    const u_signed64 hang_after = emu_setting_u64(writing ? "HPSS_EMU_HANG_AFTER" : "HPSS_EMU_READ_HANG_AFTER", UINT64_MAX);
    const u_signed64 corrupt_at = writing ? emu_setting_u64("HPSS_EMU_CORRUPT_AT", UINT64_MAX) : UINT64_MAX;
    const int write_behind = writing && emu_setting_u64("HPSS_EMU_WRITE_BEHIND", 1) != 0;
    const u_signed64 mover_delay_us = writing ? emu_setting_u64("HPSS_EMU_MOVER_DELAY_US", 0) : 0;
    u_signed64 pos = g->job_off;
    int rc = 0;

    while (pos < end) {
        u_signed64 want = end - pos < block ? end - pos : block;
        u_signed64 done_before = __atomic_load_n(&g->moved_total, __ATOMIC_RELAXED);
        if (done_before >= hang_after) {
            /* A hung mover: nothing moves until the coordinator gives up. */
            pthread_mutex_lock(&g->mu);
            while (!g->ended)
                pthread_cond_wait(&g->cv, &g->mu);
            pthread_mutex_unlock(&g->mu);
            rc = HPSS_ETIMEDOUT;
            break;
        }
        int failing = done_before + want > fail_after;
        if (failing)
            want = fail_after > done_before ? fail_after - done_before : 0;
        if (want > 0) {
            unsigned int length = (unsigned int)want;
            if (writing) {
                int cbrc = cb(cb_arg, pos, &length, write_buf);
                if (cbrc != 0) {
                    rc = emu_callback_failure_code();
                    break;
                }
                if (*write_buf == NULL) {
                    rc = HPSS_EFAULT;
                    break;
                }
                /* As in HPSS, the requested length is what moves: a callback
                 * that shortened *length still has the whole block counted. */
                ssize_t n = pwrite(g->job_fd, *write_buf, (size_t)want, (off_t)pos);
                if (n != (ssize_t)want) {
                    rc = n < 0 ? -errno : HPSS_EIO;
                    break;
                }
#ifdef SYNC_FILE_RANGE_WRITE
                /* A mover writes what it receives while more arrives; leaving
                 * the whole segment dirty for the closing fdatasync stopped the
                 * transfer for the flush's length.  A start, not a promise: the
                 * fdatasync below is still what makes the bytes durable. */
                if (write_behind)
                    (void)sync_file_range(g->job_fd, (off_t)pos, (off_t)want, SYNC_FILE_RANGE_WRITE);
#endif
                if (mover_delay_us > 0) {
                    struct timespec pause = {(time_t)(mover_delay_us / 1000000),
                                             (long)(mover_delay_us % 1000000) * 1000};
                    while (nanosleep(&pause, &pause) != 0 && errno == EINTR)
                        ;
                }
                if (corrupt_at >= pos && corrupt_at < pos + want) {
                    /* A mover that damages one byte on its way to the media:
                     * the Execute still reports it moved. */
                    unsigned char bad = (unsigned char)(((unsigned char *)*write_buf)[corrupt_at - pos] ^ 0xFF);
                    if (pwrite(g->job_fd, &bad, 1, (off_t)corrupt_at) != 1) {
                        rc = -errno;
                        break;
                    }
                }
            } else {
                ssize_t n = pread(g->job_fd, data_buf, (size_t)want, (off_t)pos);
                if (n != (ssize_t)want) {
                    rc = n < 0 ? -errno : HPSS_EIO;
                    break;
                }
                void *buf = data_buf;
                if (cb(cb_arg, pos, &length, &buf) != 0) {
                    rc = emu_callback_failure_code();
                    break;
                }
            }
            pos += want;
            __atomic_add_fetch(&g->moved_total, want, __ATOMIC_RELAXED);
        }
        if (failing) {
            rc = -emu_setting_errno("HPSS_EMU_FAIL_ERRNO", EIO);
            break;
        }
    }
    g->job_moved = pos - g->job_off;
    g->job_rc = rc;
}

int hpss_PIORegister(unsigned32 StripeElement, const hpss_sockaddr_t *DataNetSockAddr, void *DataBuffer,
                     unsigned32 DataBufLen, hpss_pio_grp_t StripeGroup, const hpss_pio_cb_t IOCallback,
                     const void *IOCallbackArg)
{
    (void)DataNetSockAddr;
    if (StripeGroup == NULL || IOCallback == NULL || DataBuffer == NULL)
        return HPSS_EFAULT;
    emu_group_t *g = StripeGroup->g;
    if (StripeGroup->coordinator || StripeElement != 0)
        return HPSS_EINVAL;
    /* A real HPSS hangs on a buffer smaller than the block size; the
     * emulator says so instead. */
    if (DataBufLen < g->params.BlockSize)
        return HPSS_EINVAL;
    void *write_buf = NULL; /* the first write callback gets NULL */

    pthread_mutex_lock(&g->mu);
    if (g->registered) {
        pthread_mutex_unlock(&g->mu);
        return HPSS_EINVAL;
    }
    g->registered = 1;
    pthread_cond_broadcast(&g->cv);
    for (;;) {
        while (!g->job_pending && !g->ended)
            pthread_cond_wait(&g->cv, &g->mu);
        if (g->job_pending) {
            pthread_mutex_unlock(&g->mu);
            run_job(g, DataBuffer, IOCallback, (void *)IOCallbackArg, &write_buf);
            pthread_mutex_lock(&g->mu);
            if (g->job_rc != 0 && g->job_rc != HPSS_ETIMEDOUT && g->register_rc == 0)
                g->register_rc = g->job_rc;
            g->job_pending = 0;
            g->job_done = 1;
            pthread_cond_broadcast(&g->cv);
            continue;
        }
        break; /* ended */
    }
    int rc = g->register_rc;
    pthread_mutex_unlock(&g->mu);
    return rc;
}

/* Where the next hole at or after off starts and ends (end == start: none). */
static void find_gap(int fd, u_signed64 off, u_signed64 limit, u_signed64 *start, u_signed64 *end)
{
    off_t h = lseek(fd, (off_t)off, SEEK_HOLE);
    if (h < 0 || (u_signed64)h >= limit) {
        *start = *end = limit;
        return;
    }
    off_t d = lseek(fd, h, SEEK_DATA);
    *start = (u_signed64)h;
    *end = (d < 0 || (u_signed64)d > limit) ? limit : (u_signed64)d;
}

static int wait_registered(emu_group_t *g)
{
    u_signed64 secs = emu_setting_u64("HPSS_EMU_REGISTER_WAIT", 30);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)secs;
    while (!g->registered && !g->ended)
        if (pthread_cond_timedwait(&g->cv, &g->mu, &until) == ETIMEDOUT)
            return HPSS_ETIMEDOUT;
    return g->ended ? HPSS_EIO : 0;
}

static int execute(emu_group_t *g, int Fd, u_signed64 FileOffset, u_signed64 Size, hpss_pio_gapinfo_t *GapInfo,
                   u_signed64 *BytesMoved);

int hpss_PIOExecute(int Fd, u_signed64 FileOffset, u_signed64 Size, hpss_pio_grp_t StripeGroup,
                    hpss_pio_gapinfo_t *GapInfo, u_signed64 *BytesMoved)
{
    if (!emu_logged_in())
        return HPSS_EPERM;
    if (StripeGroup == NULL || GapInfo == NULL || BytesMoved == NULL)
        return HPSS_EFAULT;
    /* The call holds its own reference: a PIOEnd of both groups from other
     * threads (a watchdog, the participant) must not free the group while
     * this call still waits on it. */
    pthread_mutex_lock(&registry_mu);
    int usable = StripeGroup->coordinator && !StripeGroup->ended;
    emu_group_t *g = StripeGroup->g;
    if (usable)
        g->refs++;
    pthread_mutex_unlock(&registry_mu);
    if (!usable)
        return HPSS_EINVAL;
    int rc = execute(g, Fd, FileOffset, Size, GapInfo, BytesMoved);
    group_release(g);
    return rc;
}

static int execute(emu_group_t *g, int Fd, u_signed64 FileOffset, u_signed64 Size, hpss_pio_gapinfo_t *GapInfo,
                   u_signed64 *BytesMoved)
{
    const int writing = g->params.Operation == HPSS_PIO_WRITE;
    const int bz4719 = emu_has_bz4719();
    memset(GapInfo, 0, sizeof *GapInfo);

    if (Size == 0) {
        pthread_mutex_lock(&g->mu);
        if (g->register_rc == 0)
            g->register_rc = HPSS_EIO;
        pthread_mutex_unlock(&g->mu);
        if (!bz4719)
            *BytesMoved = 0;
        return HPSS_EINVAL;
    }

    struct stat st;
    if (fstat(Fd, &st) != 0)
        return -errno;
    u_signed64 len = Size;
    u_signed64 short_max = emu_setting_u64("HPSS_EMU_SHORT_EXECUTE", 0);
    if (short_max > 0 && len > short_max)
        len = short_max;

    int gap_rc = 0;
    if (!writing) {
        u_signed64 fsize = (u_signed64)st.st_size;
        if (FileOffset >= fsize) {
            *BytesMoved = 0;
            return HPSS_EOM;
        }
        u_signed64 limit = FileOffset + len < fsize ? FileOffset + len : fsize;
        u_signed64 gs, ge;
        find_gap(Fd, FileOffset, limit, &gs, &ge);
        if (ge > gs) {
            /* Stop at the hole and describe it relative to FileOffset. */
            len = gs - FileOffset;
            GapInfo->Offset = len;
            GapInfo->Length = ge - gs;
            gap_rc = emu_gap_is_eom() ? HPSS_EOM : 0;
        } else {
            len = limit - FileOffset;
        }
        if (len == 0) {
            *BytesMoved = 0;
            return gap_rc;
        }
    }

    pthread_mutex_lock(&g->mu);
    int rc = wait_registered(g);
    if (rc != 0) {
        pthread_mutex_unlock(&g->mu);
        if (!bz4719)
            *BytesMoved = 0;
        return rc;
    }
    g->job_fd = Fd;
    g->job_off = FileOffset;
    g->job_len = len;
    g->job_moved = 0;
    g->job_rc = 0;
    g->job_done = 0;
    g->job_pending = 1;
    pthread_cond_broadcast(&g->cv);
    while (!g->job_done && !g->ended)
        pthread_cond_wait(&g->cv, &g->mu);
    int ended_early = !g->job_done;
    u_signed64 moved = g->job_moved;
    rc = ended_early ? HPSS_EIO : g->job_rc;
    pthread_mutex_unlock(&g->mu);

    if (writing) {
        /* What Execute reports as moved is durable before it returns. */
        if (fdatasync(Fd) != 0 && rc == 0)
            rc = -errno;
        if (rc != 0) {
            u_signed64 rollback = emu_setting_u64("HPSS_EMU_ROLLBACK", 0);
            u_signed64 inflate = emu_setting_u64("HPSS_EMU_INFLATE", 0);
            if (rollback > 0 || inflate > 0) {
                /* The storage keeps less than was handed over. */
                moved = moved > rollback ? moved - rollback : 0;
                if (ftruncate(Fd, (off_t)(FileOffset + moved)) == 0)
                    fdatasync(Fd);
            }
            if (!bz4719)
                *BytesMoved = moved + inflate;
            return rc;
        }
        /* A real HPSS keeps the data on its movers, not in this host's page
         * cache: give the durable segment's pages back, so the emulated store
         * does not charge the client for memory it would never use. */
        if (moved > 0)
            (void)posix_fadvise(Fd, (off_t)FileOffset, (off_t)moved, POSIX_FADV_DONTNEED);
    } else if (rc != 0) {
        if (!bz4719)
            *BytesMoved = moved;
        return rc;
    }
    *BytesMoved = moved;
    return gap_rc;
}

int hpss_PIOEnd(hpss_pio_grp_t StripeGroup)
{
    if (StripeGroup == NULL)
        return HPSS_EFAULT;
    pthread_mutex_lock(&registry_mu);
    int was_ended = StripeGroup->ended;
    StripeGroup->ended = 1;
    pthread_mutex_unlock(&registry_mu);
    if (was_ended)
        return HPSS_EINVAL;
    emu_group_t *g = StripeGroup->g;
    if (StripeGroup->coordinator) {
        pthread_mutex_lock(&g->mu);
        g->ended = 1;
        pthread_cond_broadcast(&g->cv);
        pthread_mutex_unlock(&g->mu);
    }
    group_release(g);
    /* The handle itself stays allocated: a second PIOEnd must see 'ended'.
     * It is a few bytes per transfer. */
    return 0;
}
