"""What ``transfercore copy`` shows while it runs: a progress bar on a
terminal, plain lines otherwise, one JSON event per line with ``--json``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from ..sizes import format_size
from . import silence_stdout


def listener_for(args: argparse.Namespace, transfer: Any) -> Callable[[Any], None] | None:
    if args.json:
        return JsonLines(sys.stdout, lambda: transfer.transfer_id)
    if args.quiet:
        return None
    if sys.stderr.isatty():
        return RichBar()
    return PlainLines(sys.stdout)


class JsonLines:
    """One JSON object per event, flushed, so scripts can follow a transfer."""

    def __init__(self, out: TextIO, transfer_id: Callable[[], int | None] = lambda: None) -> None:
        self.out: TextIO | None = out
        self._transfer_id = transfer_id

    def __call__(self, event: Any) -> None:
        from ..engine.events import envelope

        if self.out is None:
            return
        try:
            self.out.write(json.dumps(envelope(event, self._transfer_id()), sort_keys=True) + "\n")
            self.out.flush()
        except BrokenPipeError:
            # The reader went away (e.g. piped into head): the copy goes on silently.
            self.out = None
            silence_stdout()


def _rate(value: float) -> str:
    return f"{format_size(value)}/s"


def _resumed_line(event: Any) -> str:
    line = f"resuming: {format_size(event.bytes)} already durable at the destination"
    return f"{line} ({event.note})" if event.note else line


def _up_to_date_line(event: Any) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(event.finished))
    checksum = f", {event.checksum_algorithm.upper()} {event.checksum}" if event.checksum else ""
    return (
        f"up to date: copied in full at {when}{checksum}, and neither end changed since; nothing to do "
        "(--force copies again)"
    )


class PlainLines:
    """Readable lines for logs: at most one progress line every few seconds."""

    EVERY = 5.0

    def __init__(self, out: TextIO) -> None:
        self.out: TextIO | None = out
        self._last = 0.0

    def _print(self, text: str) -> None:
        if self.out is None:
            return
        try:
            self.out.write(text + "\n")
            self.out.flush()
        except BrokenPipeError:
            self.out = None  # the reader went away: the copy goes on silently
            silence_stdout()

    def __call__(self, event: Any) -> None:
        kind = event.kind
        if kind == "start":
            self._print(
                f"copying {event.source} -> {event.destination} ({format_size(event.size)}, "
                f"{event.streams} streams, checksum {event.checksum or 'none'})"
            )
        elif kind == "resumed":
            self._print(_resumed_line(event))
        elif kind == "restart":
            self._print(f"starting from zero: {event.reason}")
        elif kind == "up-to-date":
            self._print(_up_to_date_line(event))
        elif kind == "verify-progress":
            now = time.monotonic()
            if now - self._last >= self.EVERY:
                self._last = now
                self._print(f"verified {format_size(event.bytes_verified)} of {format_size(event.size)}")
        elif kind == "progress":
            now = time.monotonic()
            if now - self._last >= self.EVERY:
                self._last = now
                eta = f", ETA {event.eta:.0f} s" if event.eta is not None else ""
                self._print(
                    f"{format_size(event.bytes_done)} of {format_size(event.size)} "
                    f"at {_rate(event.rate)}{eta}; durable {format_size(event.durable_bytes)}"
                )
        elif kind == "verify":
            self._print(f"verifying {event.algorithm.upper()} ({event.method})")
        elif kind == "done":
            checksum = f"; {event.checksum_algorithm.upper()} {event.checksum}" if event.checksum else ""
            self._print(
                f"done: {format_size(event.size)} in {event.elapsed:.1f} s "
                f"({format_size(event.bytes_sent)} sent, {format_size(event.bytes_resumed)} resumed){checksum}"
            )


class RichBar:
    """A progress bar on the terminal: bytes, rate, ETA and durable bytes."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self.console = Console(stderr=True)
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            TextColumn("durable {task.fields[durable]}"),
            console=self.console,
            transient=False,
        )
        self.task: Any = None

    def __call__(self, event: Any) -> None:
        kind = event.kind
        if kind == "start":
            self.progress.start()
            self.task = self.progress.add_task("copy", total=event.size or 1, durable=format_size(0))
        elif kind == "resumed":
            self.console.print(_resumed_line(event))
            self.progress.update(self.task, completed=event.bytes, durable=format_size(event.bytes))
        elif kind == "restart":
            self.console.print(f"starting from zero: {event.reason}")
        elif kind == "up-to-date":
            self.console.print(_up_to_date_line(event))
        elif kind == "verify-progress" and self.task is not None:
            self.progress.update(self.task, completed=event.bytes_verified)
        elif kind == "progress":
            self.progress.update(self.task, completed=event.bytes_done, durable=format_size(event.durable_bytes))
        elif kind == "marker" and self.task is not None:
            self.progress.update(self.task, durable=format_size(event.durable_bytes))
        elif kind == "verify" and self.task is not None:
            self.progress.update(self.task, description=f"verify {event.algorithm}")
        elif kind in ("done", "error", "interrupted"):
            self.close()
            if kind == "done":
                checksum = f", {event.checksum_algorithm.upper()} {event.checksum}" if event.checksum else ""
                self.console.print(f"done: {format_size(event.size)} in {event.elapsed:.1f} s{checksum}")

    def close(self) -> None:
        self.progress.stop()
