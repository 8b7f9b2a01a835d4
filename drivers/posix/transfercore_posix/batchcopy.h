/* One small file of a batch copy (see batchcopy.c, batchcopy.py). */
#include <stddef.h>
#include <stdint.h>

typedef struct {
    /* in */
    const char *src;     /* the source file */
    const char *partial; /* its hidden partial name at the destination */
    const char *final;   /* its final name */
    const char *dir;     /* the destination directory */
    int64_t size;        /* the source as the walk saw it */
    int64_t mtime_ns;
    uint64_t dev;
    uint64_t ino;
    uint32_t mode;
    /* out */
    int stage; /* TC_OK, or the step that failed */
    int err;   /* errno of that step (0: none) */
    uint32_t crc;     /* CRC32C of the source bytes */
    uint32_t got_crc; /* with TC_MISMATCH: what was read back */
    /* the published object, as a later run compares it */
    uint64_t dst_dev;
    uint64_t dst_ino;
    int64_t dst_mtime_ns;
    int64_t dst_ctime_ns;
    int fd;
    int covered;    /* made durable by the batch's syncfs (its directory on that device) */
    int dir_synced; /* its new name made durable with every directory at once */
    int dirfd;      /* the destination directory, open (shared by neighbours; the batch closes it) */
    const char *partial_name; /* the partial and final names within it */
    const char *final_name;
} tc_item;

enum { TC_OK = 0, TC_SOURCE = 1, TC_CHANGED = 2, TC_DEST = 3, TC_SYNC = 4, TC_VERIFY = 5, TC_MISMATCH = 6,
       TC_PUBLISH = 7, TC_DIRSYNC = 8 };

uint32_t tc_crc32c(uint32_t crc, const unsigned char *p, size_t n);
int tc_crc32c_hardware(void);
int tc_bind_paths(tc_item *items, int n, const char *strings, size_t len);
int tc_copy_batch(tc_item *items, int n, int use_syncfs, int verify, int64_t drop_from);
