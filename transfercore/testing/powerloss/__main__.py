"""``python -m transfercore.testing.powerloss serve BACKING MOUNTPOINT``: run the file system."""

from __future__ import annotations

import argparse
import logging
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m transfercore.testing.powerloss",
        description="A FUSE file system that keeps writes in memory until fsync and loses them on a crash.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve_p = sub.add_parser("serve", help="mount and serve in the foreground until unmounted")
    serve_p.add_argument("backing", help="directory holding the durable state")
    serve_p.add_argument("mountpoint")
    serve_p.add_argument(
        "--no-host-fsync",
        action="store_true",
        help="do not fsync the backing store (enough for simulated crashes, faster)",
    )
    serve_p.add_argument("--no-allow-other", action="store_true", help="only the mounting user may access it")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    from .fuseops import serve

    serve(args.backing, args.mountpoint, host_fsync=not args.no_host_fsync, allow_other=not args.no_allow_other)
    return 0


if __name__ == "__main__":
    sys.exit(main())
