"""``transfercore globus-server URL [globus-gridftp-server options...]``: the real Globus
server with the transfercore DSI, serving URL (provided by ``transfercore-globus-dsi``)."""

from __future__ import annotations

import argparse
import os
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
    p.add_argument("--site-config", action="store_true", help="print the gridftp.conf lines and environment, and exit")
    p.add_argument("url", help="driver URL whose path clients see as '/', e.g. posix:///data")
    p.add_argument("server_args", nargs=argparse.REMAINDER, help="options for globus-gridftp-server")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        from transfercore_globus_dsi import launch
    except ImportError:
        raise TransferCoreError(
            "the Globus DSI is not installed",
            hint="pip install transfercore-globus-dsi (needs libglobus-gridftp-server-dev and a C compiler)",
        ) from None
    if args.site_config:
        print(launch.site_config(args.url, args.log))
        return int(ExitCode.OK)
    plan = launch.server_launch(args.url, args.server_args, log=args.log, dsi_extra=args.dsi_option)
    print(f"transfercore globus-server: DSI log {plan.log}", file=sys.stderr, flush=True)
    os.execve(plan.argv[0], list(plan.argv), dict(plan.env))
    return int(ExitCode.FAILED)  # not reached
