"""CRC32C of a whole object from the CRC32C values of its consecutive pieces.

``combine(crc(A), crc(B), len(B)) == crc(A + B)``: CRC is linear over GF(2),
so appending ``len(B)`` bytes to ``A`` acts on ``crc(A)`` as a 32x32 bit
matrix, raised to the ``8 * len(B)``-th power by repeated squaring (the
method of zlib's ``crc32_combine``, here with the Castagnoli polynomial).
The pre- and post-inversion of CRC32C cancel out in the sum, so the values
combined are the ordinary finished checksums.  Cost: O(log len(B)) matrix
squarings of 32 words, about a millisecond, whatever the sizes.
"""

from __future__ import annotations

from collections.abc import Iterable

#: CRC-32C (Castagnoli), bit-reflected.
POLY = 0x82F63B78


def _times(matrix: list[int], vector: int) -> int:
    out = 0
    i = 0
    while vector:
        if vector & 1:
            out ^= matrix[i]
        vector >>= 1
        i += 1
    return out


def _square(matrix: list[int]) -> list[int]:
    return [_times(matrix, row) for row in matrix]


def combine(crc1: int, crc2: int, len2: int) -> int:
    """The CRC32C of ``A + B`` from ``crc1`` of ``A``, ``crc2`` of ``B`` and ``len(B)``."""
    if len2 < 0:
        raise ValueError(f"length {len2} is negative")
    if len2 == 0:
        return crc1
    # The operator for one zero bit, then two, then four.
    odd = [POLY] + [1 << n for n in range(31)]
    even = _square(odd)
    odd = _square(even)
    while True:
        even = _square(odd)  # 8, 32, 128 ... zero bits
        if len2 & 1:
            crc1 = _times(even, crc1)
        len2 >>= 1
        if not len2:
            break
        odd = _square(even)
        if len2 & 1:
            crc1 = _times(odd, crc1)
        len2 >>= 1
        if not len2:
            break
    return crc1 ^ crc2


def combine_all(pieces: Iterable[tuple[int, int]]) -> int:
    """The CRC32C of consecutive pieces given as ``(crc, length)``, in order."""
    total = 0
    for crc, length in pieces:
        total = combine(total, crc, length)
    return total
