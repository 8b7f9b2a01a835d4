/* Session, files, namespace and user-defined attributes of the emulator.
 * The namespace is a plain directory (HPSS_EMU_ROOT); attributes live in
 * side files under ROOT/.hpss_emu_uda so that data files stay byte-exact. */
#define _GNU_SOURCE
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "emu_internal.h"

#define UDA_DIR "/.hpss_emu_uda"
#define UDA_MAX 64

static int logged_in;
static __thread hpss_errno_state_t last_errno;

static int fail(const char *func, int rc)
{
    if (rc < 0) {
        last_errno.hpss_errno = rc;
        snprintf(last_errno.func, sizeof last_errno.func, "%s", func);
    }
    return rc;
}

hpss_errno_state_t hpss_GetLastHPSSErrno(void) { return last_errno; }
void hpss_ClearLastHPSSErrno(void) { memset(&last_errno, 0, sizeof last_errno); }

int emu_logged_in(void) { return __atomic_load_n(&logged_in, __ATOMIC_ACQUIRE); }

/* The HPSS core server keeps the namespace in transactions: a create, a rename,
 * a removal is durable when the call returns.  The emulated namespace is a
 * directory tree, so each such call syncs the directories it changed (a power
 * cut must not take back a name HPSS would have kept). */
static int sync_parent(const char *path)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == NULL)
        return 0;
    if (slash == dir)
        slash[1] = '\0';
    else
        *slash = '\0';
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) == 0 ? 0 : -errno;
    close(fd);
    return rc;
}

/* After a rename: the new name's directory, and the old one's when it is another. */
static int sync_renamed(const char *from, const char *to)
{
    int rc = sync_parent(to);
    const char *a = strrchr(from, '/'), *b = strrchr(to, '/');
    if (rc == 0 && a != NULL && b != NULL && (a - from != b - to || strncmp(from, to, (size_t)(a - from)) != 0))
        rc = sync_parent(from);
    return rc;
}

int hpss_SetLoginCred(char *PrincipalName, hpss_authn_mech_t Mechanism, hpss_rpc_cred_type_t CredType,
                      hpss_rpc_auth_type_t AuthType, void *Authenticator)
{
    (void)Mechanism;
    (void)AuthType;
    (void)Authenticator;
    if (PrincipalName == NULL || PrincipalName[0] == '\0' || CredType != hpss_rpc_cred_client)
        return fail("hpss_SetLoginCred", HPSS_EINVAL);
    const char *root = emu_setting_str("HPSS_EMU_ROOT");
    struct stat st;
    if (root == NULL || stat(root, &st) != 0 || !S_ISDIR(st.st_mode))
        return fail("hpss_SetLoginCred", HPSS_EINVAL);
    __atomic_store_n(&logged_in, 1, __ATOMIC_RELEASE);
    return HPSS_E_NOERROR;
}

int hpss_PurgeLoginCred(void)
{
    __atomic_store_n(&logged_in, 0, __ATOMIC_RELEASE);
    return HPSS_E_NOERROR;
}

int emu_map_path(const char *path, char out[PATH_MAX])
{
    if (!emu_logged_in())
        return HPSS_EPERM;
    const char *root = emu_setting_str("HPSS_EMU_ROOT");
    if (root == NULL || path == NULL || path[0] != '/')
        return HPSS_EINVAL;
    /* No component may climb out of the root. */
    for (const char *p = path; (p = strstr(p, "..")) != NULL; p += 2) {
        int starts = p == path || p[-1] == '/';
        int ends = p[2] == '\0' || p[2] == '/';
        if (starts && ends)
            return HPSS_EINVAL;
    }
    if (strncmp(path, UDA_DIR, strlen(UDA_DIR)) == 0)
        return -EACCES;
    if ((size_t)snprintf(out, PATH_MAX, "%s%s", root, path) >= PATH_MAX)
        return -ENAMETOOLONG;
    return 0;
}

static int uda_path(const char *path, char out[PATH_MAX])
{
    const char *root = emu_setting_str("HPSS_EMU_ROOT");
    if ((size_t)snprintf(out, PATH_MAX, "%s%s%s.uda", root, UDA_DIR, path) >= PATH_MAX)
        return -ENAMETOOLONG;
    return 0;
}

int hpss_Open(const char *Path, int Oflag, mode_t Mode, const hpss_cos_hints_t *HintsIn,
              const hpss_cos_priorities_t *HintsPri, hpss_cos_hints_t *HintsOut)
{
    (void)HintsIn;
    (void)HintsPri;
    char real[PATH_MAX];
    int rc = emu_map_path(Path, real);
    if (rc)
        return fail("hpss_Open", rc);
    /* A file this call creates is a new object: like HPSS's, it has no user-defined
     * attributes, whatever an object of the same name once had (a crash between
     * hpss_Unlink's two steps can leave them).  They go before the name exists. */
    struct stat before;
    int creates = (Oflag & O_CREAT) && lstat(real, &before) != 0 && errno == ENOENT;
    if (creates) {
        char uda[PATH_MAX];
        if (uda_path(Path, uda) == 0 && unlink(uda) == 0 && (rc = sync_parent(uda)) != 0)
            return fail("hpss_Open", rc);
    }
    int fd = open(real, Oflag | O_CLOEXEC, Mode);
    if (fd < 0)
        return fail("hpss_Open", -errno);
    /* Only a new name needs its directory synced. */
    if (creates && (rc = sync_parent(real)) != 0) {
        close(fd);
        return fail("hpss_Open", rc);
    }
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode) && (Oflag & O_ACCMODE) != O_RDONLY) {
        close(fd);
        return fail("hpss_Open", -EISDIR);
    }
    if (HintsOut != NULL) {
        memset(HintsOut, 0, sizeof *HintsOut);
        HintsOut->StripeWidth = 1;
        if (HintsIn != NULL) {
            HintsOut->MinFileSize = HintsIn->MinFileSize;
            HintsOut->MaxFileSize = HintsIn->MaxFileSize;
        }
    }
    return fd;
}

int hpss_Close(int Fildes)
{
    if (!emu_logged_in())
        return fail("hpss_Close", HPSS_EPERM);
    return close(Fildes) == 0 ? 0 : fail("hpss_Close", -errno);
}

static void fill_stat(const struct stat *st, hpss_stat_t *out)
{
    memset(out, 0, sizeof *out);
    out->st_dev = (u_signed64)st->st_dev;
    out->st_ino = (u_signed64)st->st_ino;
    out->st_mode = st->st_mode;
    out->st_nlink = (unsigned32)st->st_nlink;
    out->st_uid = st->st_uid;
    out->st_gid = st->st_gid;
    out->st_size = (u_signed64)st->st_size;
    out->hpss_st_atime = (timestamp_sec_t)st->st_atim.tv_sec;
    out->hpss_st_mtime = (timestamp_sec_t)st->st_mtim.tv_sec;
    out->hpss_st_ctime = (timestamp_sec_t)st->st_ctim.tv_sec;
}

static int do_stat(const char *func, const char *Path, hpss_stat_t *Buf, int follow)
{
    char real[PATH_MAX];
    int rc = emu_map_path(Path, real);
    if (rc)
        return fail(func, rc);
    if (Buf == NULL)
        return fail(func, HPSS_EFAULT);
    struct stat st;
    if ((follow ? stat(real, &st) : lstat(real, &st)) != 0)
        return fail(func, -errno);
    fill_stat(&st, Buf);
    return 0;
}

int hpss_Stat(const char *Path, hpss_stat_t *Buf) { return do_stat("hpss_Stat", Path, Buf, 1); }
int hpss_Lstat(const char *Path, hpss_stat_t *Buf) { return do_stat("hpss_Lstat", Path, Buf, 0); }

int hpss_Unlink(const char *Path)
{
    char real[PATH_MAX], uda[PATH_MAX];
    int rc = emu_map_path(Path, real);
    if (rc)
        return fail("hpss_Unlink", rc);
    if (unlink(real) != 0)
        return fail("hpss_Unlink", -errno);
    if (uda_path(Path, uda) == 0 && unlink(uda) == 0)
        sync_parent(uda);
    return (rc = sync_parent(real)) == 0 ? 0 : fail("hpss_Unlink", rc);
}

static int mkdirs_for(const char *file)
{
    char buf[PATH_MAX];
    snprintf(buf, sizeof buf, "%s", file);
    for (char *p = buf + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(buf, 0700) == 0) {
                int rc = sync_parent(buf);
                if (rc)
                    return rc;
            } else if (errno != EEXIST) {
                return -errno;
            }
            *p = '/';
        }
    }
    return 0;
}

int hpss_Rename(const char *Old, const char *New)
{
    char a[PATH_MAX], b[PATH_MAX], ua[PATH_MAX], ub[PATH_MAX];
    int rc = emu_map_path(Old, a);
    if (rc == 0)
        rc = emu_map_path(New, b);
    if (rc)
        return fail("hpss_Rename", rc);
    if (rename(a, b) != 0)
        return fail("hpss_Rename", -errno);
    if ((rc = sync_renamed(a, b)) != 0)
        return fail("hpss_Rename", rc);
    /* As rename(2) and a real hpss_Rename do, an existing file under New is
     * replaced: its user-defined attributes go with it. */
    if (uda_path(Old, ua) == 0 && uda_path(New, ub) == 0) {
        if (access(ua, F_OK) == 0) {
            mkdirs_for(ub);
            if (rename(ua, ub) == 0)
                sync_renamed(ua, ub);
        } else if (unlink(ub) == 0) {
            sync_parent(ub);
        }
    }
    /* A renamed directory takes the attributes of everything below it. */
    const char *root = emu_setting_str("HPSS_EMU_ROOT");
    snprintf(ua, sizeof ua, "%s%s%s", root, UDA_DIR, Old);
    snprintf(ub, sizeof ub, "%s%s%s", root, UDA_DIR, New);
    struct stat st;
    if (stat(ua, &st) == 0 && S_ISDIR(st.st_mode)) {
        mkdirs_for(ub);
        if (rename(ua, ub) == 0)
            sync_renamed(ua, ub);
    }
    return 0;
}

int hpss_Mkdir(const char *Path, mode_t Mode)
{
    char real[PATH_MAX];
    int rc = emu_map_path(Path, real);
    if (rc)
        return fail("hpss_Mkdir", rc);
    if (mkdir(real, Mode) != 0)
        return fail("hpss_Mkdir", -errno);
    return (rc = sync_parent(real)) == 0 ? 0 : fail("hpss_Mkdir", rc);
}

int hpss_Rmdir(const char *Path)
{
    char real[PATH_MAX];
    int rc = emu_map_path(Path, real);
    if (rc)
        return fail("hpss_Rmdir", rc);
    if (rmdir(real) != 0)
        return fail("hpss_Rmdir", -errno);
    return (rc = sync_parent(real)) == 0 ? 0 : fail("hpss_Rmdir", rc);
}

int hpss_Chmod(const char *Path, mode_t Mode)
{
    char real[PATH_MAX];
    int rc = emu_map_path(Path, real);
    if (rc)
        return fail("hpss_Chmod", rc);
    return chmod(real, Mode & 07777) == 0 ? 0 : fail("hpss_Chmod", -errno);
}

int hpss_Utime(const char *Path, const struct utimbuf *Times)
{
    char real[PATH_MAX];
    int rc = emu_map_path(Path, real);
    if (rc)
        return fail("hpss_Utime", rc);
    return utime(real, Times) == 0 ? 0 : fail("hpss_Utime", -errno);
}

int hpss_Truncate(const char *Path, u_signed64 Length)
{
    char real[PATH_MAX];
    int rc = emu_map_path(Path, real);
    if (rc)
        return fail("hpss_Truncate", rc);
    return truncate(real, (off_t)Length) == 0 ? 0 : fail("hpss_Truncate", -errno);
}

int hpss_SetFileOffset(int Fildes, u_signed64 OffsetIn, int SeekFlag, int Direction, u_signed64 *OffsetOut)
{
    if (!emu_logged_in())
        return fail("hpss_SetFileOffset", HPSS_EPERM);
    if (OffsetOut == NULL)
        return fail("hpss_SetFileOffset", HPSS_EFAULT);
    if (Direction != HPSS_SET_OFFSET_FORWARD && Direction != HPSS_SET_OFFSET_BACKWARD)
        return fail("hpss_SetFileOffset", HPSS_EINVAL);
    struct stat st;
    if (fstat(Fildes, &st) != 0)
        return fail("hpss_SetFileOffset", -errno);
    u_signed64 base;
    if (SeekFlag == SEEK_SET) {
        base = 0;
    } else if (SeekFlag == SEEK_CUR) {
        off_t cur = lseek(Fildes, 0, SEEK_CUR);
        if (cur < 0)
            return fail("hpss_SetFileOffset", -errno);
        base = (u_signed64)cur;
    } else if (SeekFlag == SEEK_END) {
        base = (u_signed64)st.st_size;
    } else {
        return fail("hpss_SetFileOffset", HPSS_EINVAL);
    }
    u_signed64 target;
    if (Direction == HPSS_SET_OFFSET_FORWARD) {
        if (OffsetIn > (u_signed64)INT64_MAX - base)
            return fail("hpss_SetFileOffset", HPSS_EINVAL);
        target = base + OffsetIn;
    } else {
        if (OffsetIn > base)
            return fail("hpss_SetFileOffset", HPSS_EINVAL);
        target = base - OffsetIn;
    }
    if (lseek(Fildes, (off_t)target, SEEK_SET) < 0)
        return fail("hpss_SetFileOffset", -errno);
    *OffsetOut = target;
    return 0;
}

ssize_t hpss_Read(int Fildes, void *Buf, size_t Nbyte)
{
    if (!emu_logged_in())
        return fail("hpss_Read", HPSS_EPERM);
    if (Buf == NULL)
        return fail("hpss_Read", HPSS_EFAULT);
    /* Whatever the file holds now, from the file system, as any other
     * client of the file would get it. */
    ssize_t n = read(Fildes, Buf, Nbyte);
    return n < 0 ? fail("hpss_Read", -errno) : n;
}

/* ---- directories: descriptors index a small table of DIR streams ------- */

#define EMU_MAX_DIRS 64

static pthread_mutex_t dirs_mu = PTHREAD_MUTEX_INITIALIZER;
static DIR *dirs[EMU_MAX_DIRS];
static int dirs_at_root[EMU_MAX_DIRS];

int hpss_Opendir(const char *DirName)
{
    char real[PATH_MAX];
    int rc = emu_map_path(DirName, real);
    if (rc)
        return fail("hpss_Opendir", rc);
    DIR *d = opendir(real);
    if (d == NULL)
        return fail("hpss_Opendir", -errno);
    pthread_mutex_lock(&dirs_mu);
    int slot;
    for (slot = 0; slot < EMU_MAX_DIRS && dirs[slot] != NULL; slot++)
        ;
    if (slot < EMU_MAX_DIRS) {
        dirs[slot] = d;
        dirs_at_root[slot] = strspn(DirName, "/") == strlen(DirName);
    }
    pthread_mutex_unlock(&dirs_mu);
    if (slot == EMU_MAX_DIRS) {
        closedir(d);
        return fail("hpss_Opendir", -EMFILE);
    }
    return slot;
}

static DIR *dir_at(int Dirdes, int *at_root)
{
    DIR *d = NULL;
    pthread_mutex_lock(&dirs_mu);
    if (Dirdes >= 0 && Dirdes < EMU_MAX_DIRS) {
        d = dirs[Dirdes];
        *at_root = dirs_at_root[Dirdes];
    }
    pthread_mutex_unlock(&dirs_mu);
    return d;
}

int hpss_Readdir(int Dirdes, hpss_dirent_t *DirentPtr)
{
    if (!emu_logged_in())
        return fail("hpss_Readdir", HPSS_EPERM);
    if (DirentPtr == NULL)
        return fail("hpss_Readdir", HPSS_EFAULT);
    int at_root = 0;
    DIR *d = dir_at(Dirdes, &at_root);
    if (d == NULL)
        return fail("hpss_Readdir", -EBADF);
    memset(DirentPtr, 0, sizeof *DirentPtr);
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(d);
        if (e == NULL)
            return errno ? fail("hpss_Readdir", -errno) : 0; /* d_namelen 0: the end */
        /* The emulator's own attribute store is not part of the namespace. */
        if (at_root && strcmp(e->d_name, UDA_DIR + 1) == 0)
            continue;
        size_t n = strlen(e->d_name);
        if (n > HPSS_MAX_FILE_NAME)
            return fail("hpss_Readdir", -ENAMETOOLONG);
        memcpy(DirentPtr->d_name, e->d_name, n + 1);
        DirentPtr->d_namelen = (unsigned32)n;
        DirentPtr->d_reclen = (unsigned32)sizeof *DirentPtr;
        DirentPtr->d_offset = (u_signed64)telldir(d);
        return 0;
    }
}

int hpss_Closedir(int Dirdes)
{
    if (!emu_logged_in())
        return fail("hpss_Closedir", HPSS_EPERM);
    DIR *d = NULL;
    pthread_mutex_lock(&dirs_mu);
    if (Dirdes >= 0 && Dirdes < EMU_MAX_DIRS) {
        d = dirs[Dirdes];
        dirs[Dirdes] = NULL;
    }
    pthread_mutex_unlock(&dirs_mu);
    if (d == NULL)
        return fail("hpss_Closedir", -EBADF);
    return closedir(d) == 0 ? 0 : fail("hpss_Closedir", -errno);
}

/* ---- user-defined attributes: "key\tvalue\n" lines in a side file ------- */

typedef struct {
    int n;
    char *key[UDA_MAX];
    char *value[UDA_MAX];
} uda_map_t;

static void uda_free(uda_map_t *m)
{
    for (int i = 0; i < m->n; i++) {
        free(m->key[i]);
        free(m->value[i]);
    }
    m->n = 0;
}

static int uda_load(const char *file, uda_map_t *m)
{
    m->n = 0;
    FILE *f = fopen(file, "r");
    if (f == NULL)
        return errno == ENOENT ? 0 : -errno;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) > 0 && m->n < UDA_MAX) {
        if (line[len - 1] == '\n')
            line[len - 1] = '\0';
        char *tab = strchr(line, '\t');
        if (tab == NULL)
            continue;
        *tab = '\0';
        m->key[m->n] = strdup(line);
        m->value[m->n] = strdup(tab + 1);
        m->n++;
    }
    free(line);
    fclose(f);
    return 0;
}

static int uda_store(const char *file, const uda_map_t *m)
{
    char tmp[PATH_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", file);
    int rc = mkdirs_for(file);
    if (rc)
        return rc;
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        return -errno;
    for (int i = 0; i < m->n; i++)
        fprintf(f, "%s\t%s\n", m->key[i], m->value[i]);
    /* Attributes are metadata HPSS keeps durably: make the side file so too. */
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
        rc = -errno;
        fclose(f);
        return rc;
    }
    fclose(f);
    if (rename(tmp, file) != 0)
        return -errno;
    return sync_parent(file);
}

int hpss_UserAttrSetAttrs(const char *Path, const hpss_userattr_list_t *Attr, const char *Schema)
{
    (void)Schema;
    char real[PATH_MAX], file[PATH_MAX];
    struct stat st;
    int rc = emu_map_path(Path, real);
    if (rc)
        return fail("hpss_UserAttrSetAttrs", rc);
    if (Attr == NULL || Attr->len < 0 || (Attr->len > 0 && Attr->Pair == NULL))
        return fail("hpss_UserAttrSetAttrs", HPSS_EFAULT);
    if (lstat(real, &st) != 0)
        return fail("hpss_UserAttrSetAttrs", -errno);
    if ((rc = uda_path(Path, file)) != 0)
        return fail("hpss_UserAttrSetAttrs", rc);
    uda_map_t m;
    if ((rc = uda_load(file, &m)) != 0)
        return fail("hpss_UserAttrSetAttrs", rc);
    for (int i = 0; i < Attr->len; i++) {
        const char *k = Attr->Pair[i].Key, *v = Attr->Pair[i].Value;
        if (k == NULL || v == NULL || strncmp(k, "/hpss/", 6) != 0 || strpbrk(k, "\t\n") || strpbrk(v, "\t\n")) {
            uda_free(&m);
            return fail("hpss_UserAttrSetAttrs", HPSS_EINVAL);
        }
        int j;
        for (j = 0; j < m.n && strcmp(m.key[j], k) != 0; j++)
            ;
        if (j == m.n) {
            if (m.n == UDA_MAX) {
                uda_free(&m);
                return fail("hpss_UserAttrSetAttrs", -ENOSPC);
            }
            m.key[m.n] = strdup(k);
            m.value[m.n] = NULL;
            m.n++;
        }
        free(m.value[j]);
        m.value[j] = strdup(v);
    }
    rc = uda_store(file, &m);
    uda_free(&m);
    return rc ? fail("hpss_UserAttrSetAttrs", rc) : 0;
}

int hpss_UserAttrGetAttrs(const char *Path, hpss_userattr_list_t *Attr, int XMLFlag, int XMLSize)
{
    char real[PATH_MAX], file[PATH_MAX];
    struct stat st;
    int rc = emu_map_path(Path, real);
    if (rc)
        return fail("hpss_UserAttrGetAttrs", rc);
    if (Attr == NULL || Attr->len < 0 || (Attr->len > 0 && Attr->Pair == NULL) || XMLSize <= 0)
        return fail("hpss_UserAttrGetAttrs", HPSS_EFAULT);
    if (lstat(real, &st) != 0)
        return fail("hpss_UserAttrGetAttrs", -errno);
    uda_map_t m;
    if ((rc = uda_path(Path, file)) != 0 || (rc = uda_load(file, &m)) != 0)
        return fail("hpss_UserAttrGetAttrs", rc);
    for (int i = 0; i < Attr->len; i++) {
        const char *k = Attr->Pair[i].Key;
        char *out = Attr->Pair[i].Value;
        if (k == NULL || out == NULL) {
            uda_free(&m);
            return fail("hpss_UserAttrGetAttrs", HPSS_EFAULT);
        }
        const char *v = "";
        for (int j = 0; j < m.n; j++)
            if (strcmp(m.key[j], k) == 0)
                v = m.value[j];
        /* Leaf name of the key, for the XML form <leaf>value</leaf>. */
        const char *leaf = strrchr(k, '/');
        leaf = leaf ? leaf + 1 : k;
        if (XMLFlag == UDA_API_XML && v[0] != '\0')
            snprintf(out, (size_t)XMLSize, "<%s>%s</%s>", leaf, v, leaf);
        else
            snprintf(out, (size_t)XMLSize, "%s", v);
    }
    uda_free(&m);
    return 0;
}

int hpss_UserAttrDeleteAttrs(const char *Path, hpss_userattr_list_t *Attr, char *Schema)
{
    (void)Schema;
    char real[PATH_MAX], file[PATH_MAX];
    struct stat st;
    int rc = emu_map_path(Path, real);
    if (rc)
        return fail("hpss_UserAttrDeleteAttrs", rc);
    if (Attr == NULL || Attr->len < 0 || (Attr->len > 0 && Attr->Pair == NULL))
        return fail("hpss_UserAttrDeleteAttrs", HPSS_EFAULT);
    if (lstat(real, &st) != 0)
        return fail("hpss_UserAttrDeleteAttrs", -errno);
    uda_map_t m;
    if ((rc = uda_path(Path, file)) != 0 || (rc = uda_load(file, &m)) != 0)
        return fail("hpss_UserAttrDeleteAttrs", rc);
    int removed = 0;
    for (int i = 0; i < Attr->len; i++) {
        const char *k = Attr->Pair[i].Key;
        if (k == NULL) {
            uda_free(&m);
            return fail("hpss_UserAttrDeleteAttrs", HPSS_EFAULT);
        }
        for (int j = 0; j < m.n; j++) {
            if (strcmp(m.key[j], k) == 0) {
                free(m.key[j]);
                free(m.value[j]);
                m.key[j] = m.key[m.n - 1];
                m.value[j] = m.value[m.n - 1];
                m.n--;
                removed = 1;
                break;
            }
        }
    }
    rc = removed ? uda_store(file, &m) : 0;
    uda_free(&m);
    return rc ? fail("hpss_UserAttrDeleteAttrs", rc) : 0;
}
