"""Counting what a power cut took: the marked bytes whose page no longer matches the source."""

from __future__ import annotations

from pathlib import Path

from transfercore.ranges import RangeSet

#: The unit a crash loses or keeps (the page cache's page).
PAGE = 4096


def lost_bytes(source: Path, survivor: Path | None, marked: RangeSet) -> int:
    """Bytes of ``marked`` whose page in ``survivor`` differs from ``source`` (all, if no file)."""
    if survivor is None:
        return marked.total()
    lost = 0
    with open(source, "rb") as src, open(survivor, "rb") as got:
        for r in marked:
            pos = r.start // PAGE * PAGE
            while pos < r.end:
                n = min(1 << 20, r.end - pos)
                src.seek(pos)
                got.seek(pos)
                a, b = src.read(n), got.read(n)
                if a != b:
                    for off in range(0, n, PAGE):
                        if a[off : off + PAGE] != b[off : off + PAGE]:
                            page = RangeSet.span(pos + off, pos + min(off + PAGE, len(a)))
                            lost += (page & RangeSet.of((r.start, r.end))).total()
                pos += n
    return lost
