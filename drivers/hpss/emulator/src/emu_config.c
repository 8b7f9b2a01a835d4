/* Emulator settings, versions and the emulator-only control call. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emu_internal.h"
#include "hpss_emu.h"

static const char *const KNOWN[] = {
    "HPSS_EMU_ROOT",       "HPSS_EMU_VERSION",       "HPSS_EMU_BZ4719",     "HPSS_EMU_FAIL_AFTER",
    "HPSS_EMU_FAIL_ERRNO", "HPSS_EMU_ROLLBACK",      "HPSS_EMU_INFLATE",    "HPSS_EMU_SHORT_EXECUTE",
    "HPSS_EMU_HANG_AFTER", "HPSS_EMU_GAP_EOM",       "HPSS_EMU_REGISTER_WAIT", "HPSS_EMU_READ_HANG_AFTER",
    "HPSS_EMU_CORRUPT_AT",
    NULL,
};

int hpss_emu_control(const char *name, const char *value)
{
    if (name == NULL)
        return HPSS_EINVAL;
    for (int i = 0; KNOWN[i] != NULL; i++) {
        if (strcmp(KNOWN[i], name) == 0) {
            int rc = value ? setenv(name, value, 1) : unsetenv(name);
            return rc == 0 ? HPSS_E_NOERROR : -errno;
        }
    }
    return HPSS_EINVAL;
}

const char *emu_setting_str(const char *name)
{
    const char *v = getenv(name);
    return (v != NULL && v[0] != '\0') ? v : NULL;
}

uint64_t emu_setting_u64(const char *name, uint64_t fallback)
{
    const char *v = emu_setting_str(name);
    if (v == NULL)
        return fallback;
    char *end = NULL;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0')
        return fallback;
    return (uint64_t)n;
}

static const struct {
    const char *name;
    int value;
} ERRNOS[] = {
    {"EIO", EIO},       {"ENOSPC", ENOSPC}, {"EDQUOT", EDQUOT}, {"EACCES", EACCES},
    {"EPERM", EPERM},   {"ENOENT", ENOENT}, {"ECONN", 50},      {NULL, 0},
};

int emu_setting_errno(const char *name, int fallback)
{
    const char *v = emu_setting_str(name);
    if (v == NULL)
        return fallback;
    for (int i = 0; ERRNOS[i].name != NULL; i++)
        if (strcmp(ERRNOS[i].name, v) == 0)
            return ERRNOS[i].value;
    int n = atoi(v);
    return n > 0 ? n : fallback;
}

static char version_buf[64];

char *hpss_BuildLevelString(void)
{
    const char *v = emu_setting_str("HPSS_EMU_VERSION");
    snprintf(version_buf, sizeof version_buf, "%s", v ? v : "10.3.0");
    return version_buf;
}

void emu_version(int *major, int *minor)
{
    const char *v = hpss_BuildLevelString();
    *major = 0;
    *minor = 0;
    sscanf(v, "%d.%d", major, minor);
}

int emu_has_bz4719(void)
{
    int major, minor;
    emu_version(&major, &minor);
    int default_on = major < 7 || (major == 7 && minor < 5);
    return (int)emu_setting_u64("HPSS_EMU_BZ4719", (uint64_t)default_on);
}

int emu_callback_failure_code(void)
{
    int major, minor;
    emu_version(&major, &minor);
    return (major < 7 || (major == 7 && minor < 5)) ? HPSS_EIO : HPSS_ECONN;
}

int emu_gap_is_eom(void)
{
    int major, minor;
    emu_version(&major, &minor);
    return (int)emu_setting_u64("HPSS_EMU_GAP_EOM", (uint64_t)(major <= 7));
}
