/* Shared pieces of the HPSS emulator (not part of its public header). */
#ifndef EMU_INTERNAL_H
#define EMU_INTERNAL_H

#include <limits.h>
#include <stdint.h>

#include "hpss_api.h"

/* Settings, re-read from the environment at each use so that a test can
 * change them between calls. */
uint64_t emu_setting_u64(const char *name, uint64_t fallback);
int emu_setting_errno(const char *name, int fallback);
const char *emu_setting_str(const char *name);

/* Version as "major.minor...", parsed from the version string. */
void emu_version(int *major, int *minor);
/* True when the running version leaves BytesMoved unset on error (BZ4719). */
int emu_has_bz4719(void);
/* The code Execute returns when a callback aborts the transfer. */
int emu_callback_failure_code(void);
/* True when a read over a gap returns HPSS_EOM. */
int emu_gap_is_eom(void);

/* Session: every call fails with HPSS_EPERM before hpss_SetLoginCred. */
int emu_logged_in(void);

/* Map an HPSS path onto the emulator's root; returns 0 or a negative errno. */
int emu_map_path(const char *path, char out[PATH_MAX]);

#endif
