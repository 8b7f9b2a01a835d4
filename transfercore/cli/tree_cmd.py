"""``transfercore copy -r SRC_DIR DST_DIR``: a tree as one resumable campaign.

Output as for one file: a progress bar on a terminal, plain lines otherwise,
one JSON event per line with ``--json`` (per file and for the tree), nothing
but errors with ``--quiet``.  At the end a summary; the exit code is 1 when
any entry failed or was left out (they are listed) while everything else
finished; ``--skip-specials`` says devices, FIFOs and sockets are expected.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import sys
import time
from collections.abc import Iterator
from typing import Any, TextIO

from ..collector import many_objects
from ..errors import OptionError, SizeSyntaxError, TransferAborted, TransferCoreError, UnknownChecksum
from ..sizes import format_size, parse_size
from .exitcodes import ExitCode
from .stopping import Stop

#: Failed entries listed at the end (all are in ``--json`` and ``status``).
LIST_FAILURES = 20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-r", "--recursive", action="store_true",
                        help="copy the directory tree SRC into DST (created if missing) as one resumable campaign")
    parser.add_argument("--files-from", metavar="FILE",
                        help="copy only the paths listed in FILE (relative to SRC, one a line; - for stdin)")
    parser.add_argument("--files", metavar="N",
                        help="files in flight at once in a tree copy (default 8; with --scheduler, the "
                             "cluster's worker threads)")
    parser.add_argument("--whole-file-max", default="4M", metavar="SIZE",
                        help="tree files up to SIZE are copied whole in batches; larger ones in blocks with "
                             "restart markers (default 4M)")
    parser.add_argument("--verify", action="store_true",
                        help="with -r: also read back every file already at the destination and compare its "
                             "checksum with the source's (as rsync -c); files that differ are copied again")
    parser.add_argument("--delete", action="store_true",
                        help="with -r: after a copy in which every entry succeeded, remove what DST holds and "
                             "SRC lacks (as rsync --delete); never done when any entry failed")
    parser.add_argument("-H", "--hard-links", action="store_true",
                        help="with -r: keep hard links (the other names of a file are linked, not copied)")
    parser.add_argument("-X", "--xattrs", action="store_true",
                        help="with -r: keep extended attributes, POSIX ACLs included (both ends local file "
                             "systems)")
    parser.add_argument("--owners", action="store_true",
                        help="with -r: keep the owner and group of every entry (needs root; both ends local)")
    parser.add_argument("--skip-specials", action="store_true",
                        help="devices, FIFOs and sockets in a tree are expected: list them as skipped but exit 0 "
                             "(without it, a tree copy that left any entry out exits 1)")
    parser.add_argument("--metrics-port", type=int, metavar="N",
                        help="serve Prometheus metrics of the campaign at http://127.0.0.1:N/metrics while it runs "
                             "(--metrics-host to listen elsewhere; pip install 'transfercore[metrics]')")
    parser.add_argument("--metrics-host", default="127.0.0.1", metavar="HOST", help=argparse.SUPPRESS)
    parser.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                        help="run the tree's file tasks on the workers of this Dask scheduler "
                             "(pip install 'transfercore[dask]'); the journal stays here")


def _show(text: object) -> str:
    """A path or message printable on any stream: the bytes of a name that is
    not UTF-8 shown as ``\\xNN`` escapes (JSON output keeps them exact)."""
    return str(text).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


@contextlib.contextmanager
def _metrics(args: argparse.Namespace) -> Iterator[Any]:
    """``--metrics-port``: the campaign's figures served while it runs (a listener of its events)."""
    port = getattr(args, "metrics_port", None)
    if port is None:
        yield None
        return
    if not 0 <= port <= 65535:
        raise OptionError(f"--metrics-port {port} is not a TCP port (0 to 65535)")
    from ..service.metrics import serve_metrics
    from ..service.treemetrics import TreeStats

    with TreeStats() as stats:
        exporter = serve_metrics(stats.families, args.metrics_host, port)
        try:
            yield stats
        finally:
            exporter.close()


def _fail(message: object, code: ExitCode) -> int:
    print(f"transfercore: error: {_show(message)}", file=sys.stderr)
    return int(code)


def _raise_open_files_limit() -> None:
    # Every file of a batch holds a descriptor until its batch is published.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 8192 if hard == resource.RLIM_INFINITY else min(hard, 8192)
    if soft != resource.RLIM_INFINITY and soft < want:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


@contextlib.contextmanager
def _manifest(path: str | None) -> Iterator[Any]:
    if path is None:
        yield None
    elif path == "-":
        yield sys.stdin
    else:
        try:
            handle = open(path, encoding="utf-8", errors="surrogateescape")  # noqa: SIM115
        except OSError as exc:
            raise OptionError(f"cannot read --files-from {path}: {exc.strerror or exc}") from None
        with handle:
            yield handle


def build_tree_options(args: argparse.Namespace, default_files: int = 8) -> Any:
    from ..campaign import TreeOptions
    from .copy_options import build_options

    files = default_files
    if args.files is not None:
        try:
            files = int(args.files)
        except ValueError:
            raise OptionError(f"--files {args.files!r} is not a whole number", hint="e.g. --files 8") from None
        if not 1 <= files <= 256:
            raise OptionError(f"--files {files} must be from 1 to 256")
    whole = parse_size(args.whole_file_max, what="--whole-file-max", minimum=0)
    return TreeOptions(files=files, whole_file_max=whole, transfer=build_options(args),
                       verify=bool(getattr(args, "verify", False)),
                       skip_specials=bool(getattr(args, "skip_specials", False)),
                       delete=bool(getattr(args, "delete", False)),
                       xattrs=bool(getattr(args, "xattrs", False)), owners=bool(getattr(args, "owners", False)),
                       hard_links=bool(getattr(args, "hard_links", False)),
                       **_ranges(args))


#: Tree files at least this large are cut into ranges unless ``--ranges-above`` says otherwise.
DEFAULT_RANGES_ABOVE = 1 << 30


def _ranges(args: argparse.Namespace) -> dict[str, int]:
    """Large files of the tree cut into ranges (``--ranges-above``, ``--range-size``)."""
    above = getattr(args, "ranges_above", None)
    out = {"ranges_above": parse_size(above, what="--ranges-above") if above is not None else DEFAULT_RANGES_ABOVE}
    if getattr(args, "range_size", None):
        out["range_size"] = parse_size(args.range_size, what="--range-size", minimum=1)
    return out


def run(args: argparse.Namespace) -> int:
    if args.files_from is None and not args.recursive:
        return _fail("--files-from needs -r", ExitCode.USAGE)
    if args.delete and args.files_from is not None:
        return _fail("--delete cannot be combined with --files-from (a manifest names what to copy, not what "
                     "the destination may hold)", ExitCode.USAGE)
    try:
        build_tree_options(args)
    except (OptionError, SizeSyntaxError, UnknownChecksum) as exc:
        return _fail(exc, ExitCode.USAGE)
    executor: Any = None
    if getattr(args, "scheduler", None):
        from ..campaign.dask_executor import ClusterError, DaskExecutor

        try:
            executor = DaskExecutor.connect(args.scheduler)
        except ClusterError as exc:
            return _fail(exc, ExitCode.FAILED)
    try:
        return _run(args, build_tree_options(args, executor.threads() if executor else 8), executor)
    finally:
        if executor is not None:
            executor.shutdown()


def _run(args: argparse.Namespace, options: Any, executor: Any) -> int:
    from ..campaign import CampaignStore, TreeCopy
    from .copy_options import warn_damage

    _raise_open_files_limit()
    listener: Any
    if args.json:
        listener = JsonLines(sys.stdout)
    elif args.quiet:
        listener = Quiet()
    elif sys.stderr.isatty():
        listener = TreeBar()
    else:
        listener = TreeLines(sys.stdout)
    try:
        with contextlib.ExitStack() as stack, _manifest(args.files_from) as lines, \
                CampaignStore(args.journal) as store, many_objects():
            warn_damage(store.damage)  # the journal's damage policy: said by every command until acknowledged
            tree = TreeCopy(args.source, args.destination, options, store, manifest=lines,
                            manifest_name=_manifest_key(args.files_from), executor=executor)
            # (only --json prints each file: the others are spared an event a file)
            tree.add_listener(listener, files=isinstance(listener, JsonLines))
            metrics = stack.enter_context(_metrics(args))
            if metrics is not None:
                tree.add_listener(metrics)
            try:
                with Stop(tree.cancel):
                    result = tree.run()
            finally:
                listener.close()
    except TransferAborted as exc:
        return _fail(exc, ExitCode.INTERRUPTED)
    except KeyboardInterrupt:
        return _fail("interrupted; run the same command again to resume", ExitCode.INTERRUPTED)
    except TransferCoreError as exc:
        from . import report_error

        return report_error(exc)
    if result.failed:
        print(f"transfercore: error: {len(result.failed)} of the tree's entries failed "
              "(the rest finished); run the same command again to retry them:", file=sys.stderr)
        for rel, message in result.failed[:LIST_FAILURES]:
            print(f"  {_show(rel)}: {_show(message)}", file=sys.stderr)
        if len(result.failed) > LIST_FAILURES:
            print(f"  ... and {len(result.failed) - LIST_FAILURES} more (see transfercore status)", file=sys.stderr)
        return int(ExitCode.FAILED)
    if result.skipped and not options.skip_specials:
        print(f"transfercore: error: {result.skipped} of the source's entries were not copied (everything else "
              "was); give --skip-specials if that is expected:", file=sys.stderr)
        for rel, reason in result.skipped_paths[:LIST_FAILURES]:
            print(f"  {_show(rel)}: {_show(reason)}", file=sys.stderr)
        if result.skipped > LIST_FAILURES:
            print(f"  ... and {result.skipped - LIST_FAILURES} more (the skipped events of --json)", file=sys.stderr)
        return int(ExitCode.FAILED)
    return int(ExitCode.OK)


def _manifest_key(path: str | None) -> str:
    if path is None:
        return ""
    if path == "-":
        return "stdin"
    import os

    return "manifest:" + os.path.abspath(path)


class Quiet:
    def __call__(self, event: Any) -> None:
        pass

    def close(self) -> None:
        pass


class JsonLines(Quiet):
    """``--json``: one line per event, each with the campaign's journal id.

    Entries skipped or repaired while the tree is read are reported before
    ``tree-start`` names the campaign: their lines wait for it (a few, small)
    so that they carry it too; ``close`` writes any still waiting.
    """

    def __init__(self, out: TextIO) -> None:
        self.out: TextIO | None = out
        self.campaign: int | None = None
        self.waiting: list[dict[str, Any]] = []

    def __call__(self, event: Any) -> None:
        if event.kind == "skipped":
            print(f"transfercore: warning: skipped {_show(event.path)}: {_show(event.reason)}", file=sys.stderr)
        if self.out is None:
            return
        if event.kind in ("tree-walk", "tree-start"):
            # (a long walk's progress names the campaign before tree-start does: what waits can go)
            self.campaign = event.campaign
            for early in self.waiting:
                early["campaign"] = self.campaign
        line = _envelope(event, self.campaign)
        if self.campaign is None:
            self.waiting.append(line)
            return
        self._write([*self.waiting, line])
        self.waiting = []

    def _write(self, lines: list[dict[str, Any]]) -> None:
        if self.out is None:
            return
        try:
            for line in lines:
                self.out.write(json.dumps(line, sort_keys=True) + "\n")
            self.out.flush()
        except BrokenPipeError:
            self.out = None

    def close(self) -> None:
        self._write(self.waiting)
        self.waiting = []


def _envelope(event: Any, campaign: int | None) -> dict[str, Any]:
    from ..campaign.events import envelope

    return envelope(event, campaign)


def _summary(e: Any) -> str:
    partials = ""
    if e.partials_removed or e.partials_resumed:
        partials = (f"; {e.partials_removed} partial files of an earlier run removed, "
                    f"{e.partials_resumed} resumed")
    if e.deleted:
        partials += f"; {e.deleted} deleted (not in the source)"
    if e.verified or e.differed:
        partials += f"; {e.verified} verified equal, {e.differed} differed (copied again)"
    return (f"done: {e.files} files ({format_size(e.bytes)}) in {e.elapsed:.1f} s: {e.copied} copied "
            f"({format_size(e.bytes_written)} written), {e.kept} already complete, {e.failed} failed; "
            f"{e.repaired} repaired (missing or changed at the destination){partials}; "
            f"{e.dirs} directories, {e.links} links, {e.skipped} skipped")


class TreeLines(Quiet):
    """Readable lines for logs: at most one progress line every few seconds."""

    EVERY = 5.0

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self._last = 0.0

    def _print(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def __call__(self, event: Any) -> None:
        kind = event.kind
        if kind == "tree-start":
            resumed = (f"; {event.files_done} files ({format_size(event.bytes_done)}) already complete"
                       if event.files_done else "")
            self._print(f"copying tree {event.source} -> {event.destination}: {event.files} files, "
                        f"{format_size(event.bytes)}, {event.dirs} directories, {event.links} links{resumed}")
        elif kind == "skipped":
            print(f"transfercore: warning: skipped {_show(event.path)}: {_show(event.reason)}", file=sys.stderr)
        elif kind == "file-error":
            print(f"transfercore: error: {_show(event.path)}: {_show(event.message)}", file=sys.stderr)
        elif kind == "deleted":
            self._print(f"deleted {_show(event.path)}")
        elif kind == "verify-differs":
            print(f"transfercore: warning: {_show(event.path)} differs at the destination ({_show(event.reason)}); "
                  "copying it again", file=sys.stderr)
        elif kind == "tree-walk":
            now = time.monotonic()
            if now - self._last >= self.EVERY:
                self._last = now
                self._print(f"reading the tree: {event.entries} entries so far, {event.files} files "
                            f"({format_size(event.bytes)})")
        elif kind == "tree-progress":
            now = time.monotonic()
            if now - self._last >= self.EVERY:
                self._last = now
                eta = f", ETA {event.eta:.0f} s" if event.eta is not None else ""
                self._print(f"{event.files_done} of {event.files} files, {format_size(event.bytes_done)} of "
                            f"{format_size(event.bytes)} at {format_size(event.rate)}/s{eta}")
        elif kind == "tree-done":
            self._print(_summary(event))


class TreeBar(Quiet):
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
        self.progress = Progress(TextColumn("{task.fields[files]}"), BarColumn(), DownloadColumn(binary_units=True),
                                 TransferSpeedColumn(), TimeRemainingColumn(), console=self.console)
        self.task: Any = None
        #: while the source is read (before the tree's size is known): a bar without an end
        self.walk: Any = None

    def __call__(self, event: Any) -> None:
        kind = event.kind
        if kind == "tree-walk":
            text = f"reading the tree: {event.entries} entries"
            if self.walk is None:
                self.progress.start()
                self.walk = self.progress.add_task("walk", total=None, completed=event.bytes, files=text)
            else:
                self.progress.update(self.walk, completed=event.bytes, files=text)
        elif kind == "tree-start":
            if self.walk is not None:
                self.progress.remove_task(self.walk)
                self.walk = None
            self.progress.start()
            self.task = self.progress.add_task("tree", total=event.bytes or 1, completed=event.bytes_done,
                                               files=f"{event.files_done}/{event.files} files")
        elif kind == "skipped":
            self.console.print(f"warning: skipped {_show(event.path)}: {_show(event.reason)}")
        elif kind == "file-error":
            self.console.print(f"error: {_show(event.path)}: {_show(event.message)}")
        elif kind == "verify-differs":
            self.console.print(f"warning: {_show(event.path)} differs at the destination ({_show(event.reason)}); copying it again")
        elif kind == "tree-progress" and self.task is not None:
            self.progress.update(self.task, completed=event.bytes_done, files=f"{event.files_done}/{event.files} files")
        elif kind == "tree-done":
            self.close()
            self.console.print(_summary(event))

    def close(self) -> None:
        self.progress.stop()
