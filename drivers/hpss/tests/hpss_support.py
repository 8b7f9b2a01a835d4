"""Helpers shared by the HPSS driver's tests."""

KiB = 1024


def payload(size: int, seed: int = 1) -> bytes:
    return bytes((i * 31 + seed * 7 + (i >> 9)) & 0xFF for i in range(size))
