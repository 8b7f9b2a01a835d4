"""``transfercore globus-server URL [globus-gridftp-server options...]``: the real Globus
server with the transfercore DSI, serving URL (provided by ``transfercore-globus-dsi``)."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from typing import Any

from ..errors import TransferCoreError
from .exitcodes import ExitCode


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "globus-server",
        help="run the real globus-gridftp-server with its storage handed to a transfercore driver",
        description=(
            "Start globus-gridftp-server (found on PATH) with the transfercore DSI loaded; clients' "
            "paths are mapped under URL's path.  Everything after URL goes to the server unchanged, "
            "e.g. '-p 2811 -aa -anonymous-user ftpuser'.  Needs transfercore-globus-dsi."
        ),
    )
    p.add_argument("--log", metavar="FILE", help="the DSI's own log (default /tmp/transfercore-globus-dsi-UID.log)")
    p.add_argument(
        "--dsi-option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra DSI option (markers=durable|off, durable_interval=S, spool=DIR); repeatable",
    )
    p.add_argument(
        "--warm",
        type=_warm_count,
        default=0,
        metavar="N",
        help=(
            "keep N session processes started ahead, Python running and the DSI imported, so a "
            "connection is answered in milliseconds instead of about 0.1 s; this command then stays "
            "running beside the server (default 0: the server runs alone)"
        ),
    )
    p.add_argument("--site-config", action="store_true", help="print the gridftp.conf lines and environment, and exit")
    p.add_argument("url", help="driver URL whose path clients see as '/', e.g. posix:///data")
    p.add_argument("server_args", nargs=argparse.REMAINDER, help="options for globus-gridftp-server")
    p.set_defaults(func=run)


def _warm_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a number of processes, not {text!r}") from None
    if not 0 <= value <= 64:
        raise argparse.ArgumentTypeError(f"between 0 and 64, not {value}")
    return value


def _stop_with_parent() -> None:
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)


def _wait_ms() -> int:
    """How long a connection waits for a warm process before it starts cold (documented)."""
    from transfercore_globus_dsi.warm import WAIT_MS

    text = os.environ.get("TRANSFERCORE_DSI_WARM_WAIT_MS", "")
    if not text:
        return WAIT_MS
    if not text.isdigit():
        raise TransferCoreError(
            f"TRANSFERCORE_DSI_WARM_WAIT_MS={text!r} is not a number of milliseconds",
            hint=f"give a whole number, e.g. {WAIT_MS}, or unset it",
        )
    return int(text)


def _supervise(plan: Any, size: int) -> int:
    """Run the server as a child beside its pool of warm session processes."""
    from transfercore_globus_dsi.warm import WarmPool

    def ready() -> None:
        print(f"transfercore globus-server: {size} warm session processes ready", file=sys.stderr, flush=True)

    pool = WarmPool(plan, size, wait_ms=_wait_ms(), on_ready=ready)
    # Started before the pool's thread (a fork with no other thread), and told to stop if this
    # process dies: a server left behind would hold the port with no pool and no supervisor.
    # A connection before the pool listens is served cold.
    try:
        daemon = subprocess.Popen(list(pool.daemon.argv), env=dict(pool.daemon.env), preexec_fn=_stop_with_parent)
    except BaseException:
        pool.stop()
        raise
    pool.start()
    print(f"transfercore globus-server: {size} warm session processes; server pid {daemon.pid}",
          file=sys.stderr, flush=True)

    def forward(signum: int, _frame: Any) -> None:
        daemon.send_signal(signum)
        if signum == signal.SIGHUP:
            # the server reads its configuration again; waiting sessions read the old one
            pool.recycle()

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    try:
        code = daemon.wait()
    finally:
        pool.stop()
    return code if code >= 0 else 128 - code


def run(args: argparse.Namespace) -> int:
    try:
        from transfercore_globus_dsi import launch
    except ImportError:
        raise TransferCoreError(
            "the Globus DSI is not installed",
            hint="pip install transfercore-globus-dsi (needs libglobus-gridftp-server-dev and a C compiler)",
        ) from None
    if args.site_config:
        if args.warm:
            raise TransferCoreError(
                "--warm needs this command running beside the server; a gridftp.conf starts no pool",
                hint="run the server with transfercore globus-server --warm N (see "
                     "examples/service/transfercore-globus.service), or drop --warm",
            )
        print(launch.site_config(args.url, args.log))
        return int(ExitCode.OK)
    plan = launch.server_launch(args.url, args.server_args, log=args.log, dsi_extra=args.dsi_option)
    print(f"transfercore globus-server: DSI log {plan.log}", file=sys.stderr, flush=True)
    if args.warm:
        return _supervise(plan, args.warm)
    os.execve(plan.argv[0], list(plan.argv), dict(plan.env))
    return int(ExitCode.FAILED)  # not reached
