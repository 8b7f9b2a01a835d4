/*
 * hpss_emu.h — controls that exist only in the transfercore HPSS emulator.
 *
 * A driver never calls these: they let tests set the emulator's root and
 * inject faults in-process.  Every setting is also read from the environment
 * variable of the same name, so tests that run the command line in a
 * subprocess configure it the same way.
 *
 *   HPSS_EMU_ROOT            directory holding the emulated namespace (required)
 *   HPSS_EMU_VERSION         version string, e.g. "7.4.3", "7.5.3", "10.3.0"
 *   HPSS_EMU_BZ4719          1: leave BytesMoved unset on error (default on for < 7.5)
 *   HPSS_EMU_FAIL_AFTER      a write group fails once it has moved this many bytes
 *   HPSS_EMU_FAIL_ERRNO      errno name or number the failing Execute returns (default: EIO)
 *   HPSS_EMU_ROLLBACK        on error, the file loses this many bytes before the failure point
 *   HPSS_EMU_INFLATE         on error, BytesMoved claims this many bytes more than are durable
 *   HPSS_EMU_SHORT_EXECUTE   an Execute moves at most this many bytes and returns 0 (short return)
 *   HPSS_EMU_HANG_AFTER      a write group stops moving data after this many bytes until PIOEnd
 *   HPSS_EMU_READ_HANG_AFTER the same for a read group
 *   HPSS_EMU_GAP_EOM         1/0: report a gap with HPSS_EOM (default: 1 on 7.x, 0 on later)
 *   HPSS_EMU_REGISTER_WAIT   seconds Execute waits for a participant (default 30)
 *   HPSS_EMU_CORRUPT_AT      a write group stores the byte at this file offset with its bits
 *                            flipped, and still counts it as moved (a damaging mover)
 *   HPSS_EMU_WRITE_BEHIND    1/0: a write group starts each block's write to the media as it
 *                            stores it, as a disk mover streams (default 1); 0 leaves every
 *                            byte to the fdatasync at the end of the Execute
 *   HPSS_EMU_MOVER_DELAY_US  a write group waits this many microseconds after storing each
 *                            block (a mover slower than the network: a tape, a busy disk)
 */
#ifndef HPSS_EMU_H
#define HPSS_EMU_H

#ifdef __cplusplus
extern "C" {
#endif

/* Set (value != NULL) or clear (value == NULL) one HPSS_EMU_* setting.
 * Returns 0, or HPSS_EINVAL for a name the emulator does not know. */
int hpss_emu_control(const char *name, const char *value);

#ifdef __cplusplus
}
#endif

#endif /* HPSS_EMU_H */
