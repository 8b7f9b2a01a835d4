"""Verifying one run's destination against the source's checksum.

When the destination's writer can read back its durable bytes, the
read-back runs beside the streams (:class:`~.verify.DurableVerifier`) and
a mismatch is found before the object is published.  Only a destination
that cannot read back is verified once published, through the storage's
own checksum or by reading the object, and a mismatch then removes it.
Either way a mismatch never stays looking complete under the final name.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ..checksums import Hasher, checksum_reader
from ..contract import Writer
from ..errors import RESUME_HINT, ChecksumMismatch, TransferAborted, TransferCoreError
from ..publishing import Check, Leftover, leftover, plan
from ..ranges import RangeSet
from ..registry import Endpoint
from .events import Event, Verifying, VerifyProgress
from .verify import DurableVerifier


class Verification:
    """The checks of ``writer``'s ``size`` bytes at ``dst`` against ``hasher``, the
    running checksum of the source (None: no checksum asked, nothing to verify)."""

    def __init__(
        self,
        dst: Endpoint,
        writer: Writer,
        size: int,
        hasher: Hasher | None,
        *,
        block_size: int,
        streams: int,
        progress_interval: float,
        emit: Callable[[Event], None],
        cancel: threading.Event,
        wake: threading.Event,
    ) -> None:
        self._dst = dst
        self._writer = writer
        self._size = size
        self._hasher = hasher
        self._block_size = block_size
        self._streams = streams
        self._progress_interval = progress_interval
        self._emit = emit
        self._cancel = cancel
        self._wake = wake
        self._verifier: DurableVerifier | None = None

    # -- the read-back beside the streams ---------------------------------------------

    def start(self, read_back: bool, resumed: RangeSet) -> None:
        """Start reading back the durable prefix, when the destination allows it."""
        # A destination that can read back is always verified this way, even
        # when the storage computes the algorithm itself: its checksum is of
        # a complete object, which exists only once published.  Capabilities
        # refuse read_back without markers, so the read-back has bytes to read.
        if self._hasher is None or plan(True, read_back) is not Check.BEFORE:
            return
        verifier = DurableVerifier(
            self._writer.read_durable, self._size, self._hasher.algorithm, self._block_size, wake=self._wake
        )
        verifier.advance(resumed.prefix_end())
        verifier.start()
        self._verifier = verifier

    @property
    def reading_back(self) -> bool:
        """Whether the destination is being read back before publishing."""
        return self._verifier is not None

    @property
    def error(self) -> BaseException | None:
        """What stopped the read-back, polled by the control thread."""
        return self._verifier.error if self._verifier is not None else None

    def advance(self, durable_prefix_end: int) -> None:
        """A marker made ``[0, durable_prefix_end)`` durable: the read-back may go that far."""
        if self._verifier is not None:
            self._verifier.advance(durable_prefix_end)

    def stop(self) -> None:
        if self._verifier is not None:
            self._verifier.stop()
            self._verifier.join()
            self._verifier = None

    def finish_read_back(self) -> str:
        """Wait for the read-back (after the final marker) and compare; the checksum."""
        assert self._verifier is not None and self._hasher is not None
        hasher = self._hasher
        source_sum = self._source_sum(hasher)
        self._emit(Verifying(hasher.algorithm, "read-back"))
        verifier = self._verifier
        began = time.monotonic()
        while not verifier.wait(self._progress_interval):
            self._emit(VerifyProgress(verifier.verified, self._size, time.monotonic() - began))
            if self._cancel.is_set():
                raise TransferAborted("the transfer was cancelled", hint=RESUME_HINT)
        dest_sum = verifier.finish()
        self._emit(VerifyProgress(verifier.verified, self._size, time.monotonic() - began))
        self._compare(hasher.algorithm, source_sum, dest_sum, published=False)
        return source_sum

    # -- once published -----------------------------------------------------------------

    def verify_published(self, ordered: bool) -> str | None:
        """Verify the published object (a destination that cannot read back); the checksum.

        The storage's own checksum is used whenever it gives one, declared in
        its capabilities or not (an object store may keep one it was sent);
        the ``Verifying`` event names the check that was done.
        """
        hasher = self._hasher
        if hasher is None:
            return None
        algorithm = hasher.algorithm
        source_sum = self._source_sum(hasher)
        dst = self._dst
        dest_sum = dst.driver.checksum(dst.path, algorithm)
        self._emit(Verifying(algorithm, "storage" if dest_sum is not None else "read-back"))
        if dest_sum is None:
            began = time.monotonic()
            last = [began]
            done = [0]

            def progress(length: int) -> None:  # called with each block's length
                done[0] += length
                now = time.monotonic()
                if now - last[0] >= self._progress_interval:
                    last[0] = now
                    self._emit(VerifyProgress(done[0], self._size, now - began))

            with dst.driver.open_read(dst.path) as reader:
                dest_sum = checksum_reader(
                    reader,
                    algorithm,
                    block_size=self._block_size,
                    parallel=1 if ordered else min(2, self._streams),
                    on_progress=progress,
                    stop=self._cancel,
                )
        self._compare(algorithm, source_sum, dest_sum, published=True)
        return source_sum

    # -- comparing ------------------------------------------------------------------------

    def _source_sum(self, hasher: Hasher) -> str:
        if hasher.count != self._size:
            raise TransferCoreError(
                f"the source checksum covered {hasher.count} of {self._size} bytes",
                hint="this is a bug in the engine; the object was written but not verified",
            )
        return hasher.hexdigest()

    def _compare(self, algorithm: str, source_sum: str, dest_sum: str, *, published: bool) -> None:
        if dest_sum.lower() == source_sum:
            return
        dst = self._dst
        left = leftover(Check.AFTER if published else Check.BEFORE, dst.driver.capabilities().atomic_publish)
        if left is Leftover.KEPT:
            hint = (
                "nothing was published; the partial object was kept for inspection, and copying it again "
                "sends the object in full"
            )
        elif left is Leftover.PARTIAL_TO_REMOVE:
            hint = self._remove_in_place_partial()
        else:
            # Only drivers that cannot read back before publishing get here.
            try:
                dst.driver.remove(dst.path)
            except TransferCoreError as exc:
                hint = (
                    f"the destination could not be verified before publishing and could not be removed ({exc}); "
                    "it is WRONG: remove it, then copy it again to send it in full"
                )
            else:
                hint = (
                    "the destination could not be verified before publishing, so it was removed; copying it "
                    "again sends the object in full"
                )
        raise ChecksumMismatch(algorithm.upper(), source_sum, dest_sum.lower(), hint=hint)

    def _remove_in_place_partial(self) -> str:
        """A destination without atomic publish writes under the final name: a
        partial that failed verification must not stay there looking complete."""
        dst = self._dst
        try:
            self._writer.abort()
            dst.driver.discard_partial(dst.path)
            dst.driver.remove(dst.path)
        except TransferCoreError as exc:
            return (
                "verification failed before completing the object, but this destination writes under the "
                f"final name and the partial object could not be removed ({exc}): it is WRONG; remove it, "
                "then run the same command again to send it in full"
            )
        return (
            "nothing was published; this destination writes under the final name, so the partial object "
            "was removed, and running the same command again sends the object in full"
        )
