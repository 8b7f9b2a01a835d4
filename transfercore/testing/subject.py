"""The driver under test, as the checks see it: fresh objects, known data, evidence."""

from __future__ import annotations

import contextlib
import random
import uuid
from collections.abc import Iterable, Sequence

import attrs

from transfercore.capabilities import Capabilities, RestartModel
from transfercore.contract import Driver, Writer
from transfercore.errors import LocationError, NotFound, TransferCoreError
from transfercore.location import Location, parse_location
from transfercore.ranges import ByteRange, RangeSet
from transfercore.registry import load_driver_class, open_location
from transfercore.sizes import format_size

#: Blocks per test object; the last one is short so that odd sizes are exercised.
BLOCKS = 8
#: The largest marker granularity the kit fills: its objects are about four granules.
MAX_GRANULARITY = 16 * 1024 * 1024


@attrs.frozen
class KitOptions:
    """Choices of the person running the kit (not of the driver)."""

    #: Run the power-loss clause for drivers backed by local files (needs FUSE).
    power_loss: bool = True
    #: Seed of the generated data and of the crash points, for reproducible reports.
    seed: int = 0


class Subject:
    """One driver instance opened from the scratch URL, plus helpers for checks."""

    def __init__(self, url: str | Location, options: KitOptions | None = None) -> None:
        self.location = parse_location(url) if isinstance(url, str) else url
        self.options = options or KitOptions()
        endpoint = open_location(self.location)
        self.driver: Driver = endpoint.driver
        self.base = endpoint.path.rstrip("/") or ""
        self.caps: Capabilities = self.driver.capabilities()
        self.random = random.Random(self.options.seed)
        self._created: list[str] = []
        granularity = self.caps.marker_granularity
        if granularity > MAX_GRANULARITY:
            raise ScratchUnusable(
                f"{self.location} declares restart points only every {granularity} bytes; the kit fills "
                f"at most {MAX_GRANULARITY} bytes per restart point",
                hint=granularity_hint(self.location),
            )
        # Half a granule per block: the first half of an object then holds
        # whole granules, so a marker is due when a check asks for one.
        self.block = max(self.caps.min_block_size, 16 * 1024, -(-granularity // 2))
        self.size = self.block * (BLOCKS - 1) + self.block // 2 + 1

    # --- objects and data ---------------------------------------------------------

    def new_path(self, label: str) -> str:
        path = f"{self.base}/conformance-{label}-{uuid.uuid4().hex[:10]}"
        self._created.append(path)
        return path

    def data(self, size: int | None = None) -> bytes:
        return random_bytes(self.random, self.size if size is None else size)

    def pieces(self, ranges: RangeSet) -> list[ByteRange]:
        """``ranges`` cut at block boundaries, in the order the driver accepts:
        ascending where it needs order or a prefix, shuffled otherwise."""
        out = [
            ByteRange(s, min((s // self.block + 1) * self.block, rng.end))
            for rng in ranges
            for s in [rng.start, *range((rng.start // self.block + 1) * self.block, rng.end, self.block)]
        ]
        if self.caps.restart is RestartModel.RANGES and not self.caps.ordered_writes:
            self.random.shuffle(out)
        return out

    def blocks(self, size: int | None = None) -> list[ByteRange]:
        size = self.size if size is None else size
        return [ByteRange(s, min(s + self.block, size)) for s in range(0, size, self.block)]

    def first_half(self, size: int | None = None) -> list[ByteRange]:
        """Blocks to write before a crash: holes in the middle where the driver
        accepts any range set, an in-order prefix otherwise."""
        blocks = self.blocks(size)
        if self.caps.restart is RestartModel.RANGES and not self.caps.ordered_writes:
            return [blocks[i] for i in (0, 1, 3, 4) if i < len(blocks)]
        return blocks[: len(blocks) // 2]

    def write_ranges(self, writer: Writer, data: bytes, ranges: Iterable[ByteRange]) -> RangeSet:
        """Write each range's bytes (in pieces of at most one block), returning what was written."""
        written = RangeSet()
        for rng in ranges:
            for start in range(rng.start, rng.end, self.block):
                end = min(start + self.block, rng.end)
                writer.write(start, data[start:end])
            written = written | rng
        return written

    def read_back(self, path: str, driver: Driver | None = None) -> bytes:
        reader = (driver or self.driver).open_read(path)
        with reader:
            return reader.read(0, reader.size) if reader.size else b""

    def fresh_driver(self) -> Driver:
        """A new driver instance from the same URL, as a restarted process would make."""
        return open_location(self.location).driver

    def cleanup(self) -> None:
        for path in self._created:
            for remove in (self.driver.discard_partial, self.driver.remove):
                with contextlib.suppress(Exception):
                    remove(path)
        with contextlib.suppress(Exception):
            self.driver.close()


class ScratchUnusable(LocationError):
    """The scratch location cannot hold the kit's test objects (checked once, before any clause)."""


def check_scratch(url: str | Location, options: KitOptions | None = None) -> None:
    """Write, read back and remove one small object under the scratch location, or raise
    :class:`ScratchUnusable` saying what is wrong."""
    subject = Subject(url, options)
    path = subject.new_path("probe")
    try:
        writer = subject.driver.open_write(path, 1)
        writer.write(0, b"k")
        writer.complete()
        writer.close()
        got = subject.read_back(path)
    except NotFound as exc:
        raise ScratchUnusable(
            f"the scratch location {subject.location} does not exist ({exc.args[0]})",
            hint="create it first, or give a directory URL that exists and may be written",
        ) from None
    except TransferCoreError as exc:
        raise ScratchUnusable(
            f"cannot write a test object under the scratch location {subject.location}: {exc.args[0]}",
            hint="give a directory URL that exists and may be written",
        ) from None
    finally:
        subject.cleanup()
    if got != b"k":
        raise ScratchUnusable(
            f"a one-byte test object under {subject.location} read back as {got!r}",
            hint="the driver does not return what it stored; run the round-trip clause for details",
        )


def granularity_hint(location: Location) -> str:
    """A URL option that brings the driver's restart granularity within what the kit fills,
    found by trying the driver's own options (so the hint is one the driver accepts)."""
    cls = load_driver_class(location.driver)
    current = location.option_map
    for name in sorted(cls.options):
        for size in (MAX_GRANULARITY >> shift for shift in range(0, 5)):
            text = format_size(size).replace(" ", "").replace(".0", "")
            trial = attrs.evolve(location, options={**current, name: text})
            try:
                caps = open_location(trial).driver.capabilities()
            except Exception:  # noqa: BLE001 - an option or value the driver refuses is no hint
                continue
            if caps.marker_granularity <= MAX_GRANULARITY and caps.restart is not RestartModel.NONE:
                return f"run the kit with {name}={text} on the URL, e.g. {trial}"
    return "run the kit with a URL option that makes the driver's restart points closer together"


_GAP = 64


def pattern(seed: int, size: int) -> bytes:
    """The same pseudo-random bytes in every process for the same seed."""
    return random_bytes(random.Random(seed), size)


#: ``Random.randbytes`` overflows at 256 MiB (its bit count is a C int), so larger objects
#: are drawn in pieces; a size within one piece gives the same bytes as a single draw.
_PIECE = 64 * 1024 * 1024


def random_bytes(rng: random.Random, size: int) -> bytes:
    if size <= _PIECE:
        return rng.randbytes(size)
    return b"".join(rng.randbytes(min(_PIECE, size - at)) for at in range(0, size, _PIECE))


def differing(expected: bytes, actual: bytes) -> RangeSet:
    """The byte ranges where ``actual`` differs from ``expected`` (missing bytes included),
    with gaps of up to 64 equal bytes bridged."""
    out: list[tuple[int, int]] = []
    size = max(len(expected), len(actual))
    step = 4096
    for start in range(0, size, step):
        end = min(start + step, size)
        if expected[start:end] == actual[start:end]:
            continue
        for i in range(start, end):
            if i >= len(expected) or i >= len(actual) or expected[i] != actual[i]:
                # random data matches by chance now and then: bridge short gaps
                # so the evidence names the damaged region, not its confetti
                if out and i - out[-1][1] <= _GAP:
                    out[-1] = (out[-1][0], i + 1)
                else:
                    out.append((i, i + 1))
    return RangeSet.of(*out) if out else RangeSet()


def describe_ranges(ranges: RangeSet, limit: int = 6) -> str:
    parts: Sequence[ByteRange] = list(ranges)
    text = ",".join(str(r) for r in parts[:limit])
    if len(parts) > limit:
        text += f",... ({len(parts)} ranges)"
    return f"{text} ({ranges.total()} bytes)"
