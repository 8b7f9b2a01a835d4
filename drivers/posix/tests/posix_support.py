"""Helpers shared by the POSIX driver's tests."""


def payload(size: int, seed: int = 1) -> bytes:
    """Deterministic, position-dependent bytes: a misplaced block never matches."""
    return bytes((i * 31 + seed * 7 + (i >> 8)) & 0xFF for i in range(size))
