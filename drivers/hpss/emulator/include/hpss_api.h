/*
 * hpss_api.h — the subset of the HPSS client API that transfercore-hpss uses,
 * provided by the transfercore HPSS emulator.
 *
 * Names, signatures and return conventions follow the HPSS client API: calls
 * return 0 (HPSS_E_NOERROR) or a negative error number; hpss_Open returns a
 * descriptor >= 0.  Struct layouts and constant values here are the
 * emulator's own: code built against a real HPSS takes them from the real
 * header, which is why the Python driver reaches this API through cffi's API
 * mode (the C compiler, not a hand-written layout, fixes them).
 */
#ifndef HPSS_API_H
#define HPSS_API_H

#include <errno.h>
#include <stdint.h>
#include <sys/types.h>
#include <utime.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef uint64_t u_signed64;
typedef uint32_t unsigned32;
typedef int32_t signed32;

/* ---- return codes ------------------------------------------------------- */
#define HPSS_E_NOERROR 0
#define HPSS_EPERM (-EPERM)
#define HPSS_ENOENT (-ENOENT)
#define HPSS_EIO (-EIO)
#define HPSS_EFAULT (-EFAULT)
#define HPSS_EINVAL (-EINVAL)
#define HPSS_ENOSPACE (-ENOSPC)
#define HPSS_ETIMEDOUT (-ETIMEDOUT)
/* HPSS-specific codes live outside the errno range. */
#define HPSS_ECONN (-50)
#define HPSS_EOM (-5001)

/* ---- session ------------------------------------------------------------ */
typedef enum {
    hpss_authn_mech_invalid = 0,
    hpss_authn_mech_krb5 = 1,
    hpss_authn_mech_unix = 2
} hpss_authn_mech_t;

typedef enum {
    hpss_rpc_cred_server = 1,
    hpss_rpc_cred_client = 2,
    hpss_rpc_cred_both = 3
} hpss_rpc_cred_type_t;

typedef enum {
    hpss_rpc_auth_type_invalid = 0,
    hpss_rpc_auth_type_none = 1,
    hpss_rpc_auth_type_keytab = 2,
    hpss_rpc_auth_type_keyfile = 3,
    hpss_rpc_auth_type_key = 4,
    hpss_rpc_auth_type_passwd = 5
} hpss_rpc_auth_type_t;

int hpss_SetLoginCred(char *PrincipalName, hpss_authn_mech_t Mechanism,
                      hpss_rpc_cred_type_t CredType, hpss_rpc_auth_type_t AuthType,
                      void *Authenticator);
int hpss_PurgeLoginCred(void);
char *hpss_BuildLevelString(void);

typedef struct {
    int hpss_errno;
    char func[64];
} hpss_errno_state_t;

hpss_errno_state_t hpss_GetLastHPSSErrno(void);
void hpss_ClearLastHPSSErrno(void);

/* ---- class of service hints --------------------------------------------- */
typedef enum {
    NO_PRIORITY = 0,
    LOWEST_PRIORITY = 1,
    LOW_PRIORITY = 2,
    DESIRED_PRIORITY = 3,
    HIGHLY_DESIRED_PRIORITY = 4,
    REQUIRED_PRIORITY = 5
} hpss_cos_priority_t;

typedef struct {
    unsigned32 COSId;
    u_signed64 MinFileSize;
    u_signed64 MaxFileSize;
    unsigned32 StripeWidth;
    unsigned32 StripeLength;
} hpss_cos_hints_t;

typedef struct {
    hpss_cos_priority_t COSIdPriority;
    hpss_cos_priority_t MinFileSizePriority;
    hpss_cos_priority_t MaxFileSizePriority;
    hpss_cos_priority_t StripeWidthPriority;
    hpss_cos_priority_t StripeLengthPriority;
} hpss_cos_priorities_t;

/* ---- files and namespace ------------------------------------------------ */
/* Times carry the hpss_ prefix: glibc defines st_atime & co. as macros. */
typedef int64_t timestamp_sec_t;

typedef struct {
    u_signed64 st_dev;
    u_signed64 st_ino;
    unsigned32 st_mode;
    unsigned32 st_nlink;
    unsigned32 st_uid;
    unsigned32 st_gid;
    u_signed64 st_size;
    timestamp_sec_t hpss_st_atime;
    timestamp_sec_t hpss_st_mtime;
    timestamp_sec_t hpss_st_ctime;
} hpss_stat_t;

int hpss_Open(const char *Path, int Oflag, mode_t Mode, const hpss_cos_hints_t *HintsIn,
              const hpss_cos_priorities_t *HintsPri, hpss_cos_hints_t *HintsOut);
int hpss_Close(int Fildes);
int hpss_Stat(const char *Path, hpss_stat_t *Buf);
int hpss_Lstat(const char *Path, hpss_stat_t *Buf);
int hpss_Unlink(const char *Path);
int hpss_Rename(const char *Old, const char *New);
int hpss_Mkdir(const char *Path, mode_t Mode);
int hpss_Rmdir(const char *Path);
int hpss_Truncate(const char *Path, u_signed64 Length);
/* Permission bits and times of a file or directory, as chmod(2) and utime(2). */
int hpss_Chmod(const char *Path, mode_t Mode);
int hpss_Utime(const char *Path, const struct utimbuf *Times);

/* Serial reads on a descriptor of its own, beside PIO: each descriptor has
 * its own offset.  hpss_SetFileOffset moves it by OffsetIn from SeekFlag's
 * base (SEEK_SET, SEEK_CUR, SEEK_END) in Direction and stores the result in
 * *OffsetOut; hpss_Read returns the bytes read (0 at the end of the file) or
 * a negative error number. */
#define HPSS_SET_OFFSET_FORWARD 0
#define HPSS_SET_OFFSET_BACKWARD 1
int hpss_SetFileOffset(int Fildes, u_signed64 OffsetIn, int SeekFlag, int Direction, u_signed64 *OffsetOut);
ssize_t hpss_Read(int Fildes, void *Buf, size_t Nbyte);

/* Directories: hpss_Opendir returns a directory descriptor >= 0;
 * hpss_Readdir returns 0 and an entry with d_namelen == 0 at the end. */
#define HPSS_MAX_FILE_NAME 255

typedef struct {
    u_signed64 d_offset;
    unsigned32 d_namelen;
    unsigned32 d_reclen;
    char d_name[HPSS_MAX_FILE_NAME + 1];
} hpss_dirent_t;

int hpss_Opendir(const char *DirName);
int hpss_Readdir(int Dirdes, hpss_dirent_t *DirentPtr);
int hpss_Closedir(int Dirdes);

/* ---- user-defined attributes -------------------------------------------- */
#define UDA_API_VALUE 0
#define UDA_API_XML 1
#define HPSS_XML_SIZE 10240

typedef struct {
    char *Key;
    char *Value;
} hpss_userattr_t;

typedef struct {
    signed32 len;
    hpss_userattr_t *Pair;
} hpss_userattr_list_t;

int hpss_UserAttrSetAttrs(const char *Path, const hpss_userattr_list_t *Attr, const char *Schema);
int hpss_UserAttrGetAttrs(const char *Path, hpss_userattr_list_t *Attr, int XMLFlag, int XMLSize);
/* Keys that are not set are not an error. */
int hpss_UserAttrDeleteAttrs(const char *Path, hpss_userattr_list_t *Attr, char *Schema);

/* ---- parallel I/O ------------------------------------------------------- */
typedef enum { HPSS_PIO_READ = 0, HPSS_PIO_WRITE = 1 } hpss_pio_operation_t;
typedef enum { HPSS_PIO_TCPIP = 0, HPSS_PIO_MVR_SELECT = 1 } hpss_pio_transport_t;

#define HPSS_PIO_PUSH 0x1
#define HPSS_PIO_HANDLE_GAP 0x2
#define HPSS_PIO_PORT_RANGE 0x4

typedef struct {
    hpss_pio_operation_t Operation;
    unsigned32 ClntStripeWidth;
    unsigned32 BlockSize;
    unsigned32 FileStripeWidth;
    unsigned32 IOTimeOutSecs;
    hpss_pio_transport_t Transport;
    unsigned32 Options;
} hpss_pio_params_t;

typedef struct {
    u_signed64 Offset;
    u_signed64 Length;
} hpss_pio_gapinfo_t;

typedef struct {
    unsigned short family;
    unsigned char addr[26];
} hpss_sockaddr_t;

typedef struct emu_pio_handle *hpss_pio_grp_t;

typedef int (*hpss_pio_cb_t)(void *arg, u_signed64 offset, unsigned int *length, void **buffer);

int hpss_PIOStart(hpss_pio_params_t *InputParams, hpss_pio_grp_t *StripeGroup);
int hpss_PIOExportGrp(const hpss_pio_grp_t StripeGroup, void **Buffer, unsigned int *BufLength);
int hpss_PIOImportGrp(const void *Buffer, unsigned int BufLength, hpss_pio_grp_t *StripeGroup);
int hpss_PIORegister(unsigned32 StripeElement, const hpss_sockaddr_t *DataNetSockAddr,
                     void *DataBuffer, unsigned32 DataBufLen, hpss_pio_grp_t StripeGroup,
                     const hpss_pio_cb_t IOCallback, const void *IOCallbackArg);
int hpss_PIOExecute(int Fd, u_signed64 FileOffset, u_signed64 Size, hpss_pio_grp_t StripeGroup,
                    hpss_pio_gapinfo_t *GapInfo, u_signed64 *BytesMoved);
int hpss_PIOEnd(hpss_pio_grp_t StripeGroup);

#ifdef __cplusplus
}
#endif

#endif /* HPSS_API_H */
