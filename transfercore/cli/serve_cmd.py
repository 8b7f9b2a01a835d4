"""``transfercore serve``: a GridFTP-compatible server over any storage driver."""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import signal
import sys
from typing import Any

from ..errors import OptionError
from .exitcodes import ExitCode


class UsageError(OptionError):
    """A bad option value: reported in one line, with the usage exit code."""

    exit_code = ExitCode.USAGE


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "serve",
        help="run a GridFTP-compatible server (globus-url-copy works against it)",
        description=(
            "Serve a storage driver over GridFTP.  Restart markers (111) name only "
            "durable ranges and 226 follows a durable, published file."
        ),
    )
    p.add_argument("--root", help="directory to serve (default driver: posix confined to it)")
    p.add_argument("--driver", help="storage URL instead of --root, e.g. 'posix:///?root=/srv/data'")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=2811, help="control port (default 2811; 0 picks a free one)")
    p.add_argument("--anonymous", action="store_true", help="allow anonymous logins, read-only")
    p.add_argument("--anonymous-write", action="store_true", help="allow anonymous logins that may write")
    p.add_argument("--users", help="users file of salted scrypt hashes")
    p.add_argument(
        "--add-user", metavar="NAME", help="add or replace NAME in --users (asks for a password) and exit"
    )
    p.add_argument("--passive-ports", metavar="A-B", help="range of ports for passive data connections")
    p.add_argument(
        "--marker-interval",
        type=float,
        default=5.0,
        metavar="S",
        help="seconds between restart and performance markers (default 5)",
    )
    p.add_argument(
        "--idle-timeout", type=float, default=900.0, metavar="S", help="close idle sessions after S seconds"
    )
    p.add_argument(
        "--data-timeout",
        type=float,
        default=60.0,
        metavar="S",
        help="fail a silent data connection after S seconds",
    )
    p.add_argument(
        "--spool-dir",
        metavar="DIR",
        help="where uploads without ALLO are spooled durably, so that they get restart markers and "
        "can resume (default: transfercore's state directory)",
    )
    p.add_argument("--max-sessions", type=int, default=64, help="concurrent sessions (default 64)")
    p.add_argument("--port-file", help="write the listening port to this file once ready")
    p.add_argument("-v", "--verbose", action="store_true", help="log sessions and transfers to stderr")
    p.set_defaults(func=run)


def _port_range(text: str | None) -> range | None:
    if not text:
        return None
    a, sep, b = text.partition("-")
    if not sep or not a.isdigit() or not b.isdigit() or not (1024 <= int(a) <= int(b) <= 65535):
        raise OptionError(f"--passive-ports {text!r} is not a range like 50000-50100 within 1024-65535")
    return range(int(a), int(b) + 1)


def _add_user(args: argparse.Namespace) -> int:
    from ..gridftp.users import add_user

    if not args.users:
        raise OptionError("--add-user needs --users FILE")
    if sys.stdin.isatty():
        password = getpass.getpass(f"password for {args.add_user}: ")
        if password != getpass.getpass("again: "):
            raise OptionError("the passwords differ; nothing was changed")
    else:
        password = sys.stdin.readline().rstrip("\n")
    add_user(args.users, args.add_user, password)
    print(f"user {args.add_user} written to {args.users}")
    return int(ExitCode.OK)


def run(args: argparse.Namespace) -> int:
    if args.add_user:
        return _add_user(args)
    from ..gridftp.server import ServerConfig, serve
    from ..gridftp.session import SessionConfig
    from ..gridftp.users import UserDB
    from ..location import Location
    from ..registry import open_location
    from ..statedir import state_dir

    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port {args.port} is not a TCP port (0 to 65535; 0 picks a free one)")
    if bool(args.root) == bool(args.driver):
        raise OptionError("give exactly one of --root DIR or --driver URL")
    if args.root:
        # The posix driver confined to the root: it refuses '..' and symlinks leaving it.
        # O_DIRECT where the file system allows: an upload is not read back while
        # it arrives, and buffered writes would keep up to two restart-marker
        # intervals of it (5 s each) in the page cache before dropping them.
        options = {"root": os.path.abspath(args.root), "direct": "auto"}
        endpoint = open_location(Location("posix", "/", options=options))
    else:
        endpoint = open_location(args.driver)
    driver, base_path = endpoint.driver, endpoint.path or "/"
    if args.marker_interval < 0.1:
        raise OptionError("--marker-interval must be at least 0.1 seconds")
    users = UserDB.load(args.users) if args.users else None
    if not (args.anonymous or args.anonymous_write or (users and len(users))):
        raise OptionError(
            "nobody could log in",
            hint="pass --anonymous, --anonymous-write, or --users FILE with entries made by --add-user",
        )
    config = ServerConfig(
        host=args.host,
        port=args.port,
        passive_ports=_port_range(args.passive_ports),
        session=SessionConfig(
            anonymous=args.anonymous or args.anonymous_write,
            anonymous_write=args.anonymous_write,
            marker_interval=args.marker_interval,
        ),
        idle_timeout=args.idle_timeout,
        data_timeout=args.data_timeout,
        max_sessions=args.max_sessions,
        base_path=base_path,
        spool_dir=args.spool_dir or str(state_dir() / "gridftp-spool"),
    )
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(message)s",
    )

    def ready(port: int) -> None:
        print(f"transfercore serve: listening on {args.host}:{port}", file=sys.stderr, flush=True)
        if args.port_file:
            tmp = f"{args.port_file}.tmp"
            with open(tmp, "w") as f:
                f.write(f"{port}\n")
            os.replace(tmp, args.port_file)

    # Imported here: every other subcommand would pay for asyncio at start-up.
    import asyncio

    async def main() -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)  # type: ignore[union-attr]
        await serve(config, driver, users, ready)

    try:
        asyncio.run(main())
    except asyncio.CancelledError:
        pass
    return int(ExitCode.OK)
