"""``transfercore serve-http``: resumable HTTP uploads (tus 1.0.0, the IETF draft) over any driver."""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

import attrs

from ..errors import OptionError, TransferCoreError
from ..eventloop import CHOICES, loop_factory
from ..eventloop import run as run_loop
from ..service import affinity
from ..service.config import ConfigError, given, load, merge, options, overridable
from ..service.listening import announce_listening
from .exitcodes import ExitCode


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "serve-http",
        help="serve resumable HTTP uploads (tus 1.0.0 and the IETF resumable-upload draft)",
        description=(
            "Accept resumable uploads over HTTP into a storage driver.  Every Upload-Offset the server "
            "reports is durable: in the destination, or, for a destination that cannot resume a write, "
            "in a spool under the state directory until the object is stored; an object appears under "
            "its name only when complete and verified.  Create uploads at /files/<path> (draft) or POST /files/ with a filename (tus).  "
            "SIGHUP re-reads the configuration file and the token file (the server's own, not uvicorn)."
        ),
    )
    p.add_argument("--root", help="directory to serve (the posix driver confined to it)")
    p.add_argument("--driver", help="storage URL instead of --root, e.g. 'hpss:///proj/in'")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 picks a free one)")
    p.add_argument("--state-dir", help="where upload records are kept (default: the user's state directory)")
    p.add_argument("--token", action="append", default=[], metavar="OWNER:TOKEN",
                   help="accept 'Authorization: Bearer TOKEN' as OWNER (repeatable); without it anyone may upload")
    p.add_argument("--token-file", metavar="FILE", help="lines of OWNER:TOKEN, like --token")
    lim = p.add_argument_group("limits")
    lim.add_argument("--max-size", default="1T", metavar="SIZE", help="largest upload (default 1T)")
    lim.add_argument("--max-header-size", default="16K", metavar="SIZE",
                     help="largest request head, all header lines together (default 16K)")
    lim.add_argument("--max-uploads", type=int, default=64, metavar="N",
                     help="request bodies received at once; more get 503 (default 64)")
    lim.add_argument("--expiry", type=float, default=24.0, metavar="HOURS",
                     help="forget an unfinished upload, and its partial data, HOURS after its last byte (default 24)")
    lim.add_argument("--sync-every", default="16M", metavar="SIZE",
                     help="make received bytes durable (and reportable) every SIZE of a request (default 16M)")
    lim.add_argument("--body-timeout", type=float, default=60.0, metavar="S",
                     help="give up a request body silent for S seconds, keeping its durable part (default 60)")
    lim.add_argument("--header-timeout", type=float, default=30.0, metavar="S",
                     help="close a connection whose request head has not arrived whole S seconds after it "
                     "opened or after the previous reply: idle keep-alive connections too (default 30)")
    p.add_argument("--cpu-affinity", default="off", metavar="auto|off|CPUS",
                   help="off (default): where the system puts it; auto: on one core of a machine of at "
                   "most 2 (hand-offs between the process's threads then stay on that core: less CPU for "
                   "many uploads at once, a little slower for one large one); CPU numbers (0,2-3): on "
                   "the first of them")
    p.add_argument("--http-server", choices=("transfercore", "uvicorn"), default="transfercore",
                   help="the HTTP/1.1 server: the project's own (default; it sends the draft's 104 "
                   "Upload Resumption Supported) or uvicorn (pip install 'transfercore[http]'; no 104)")
    p.add_argument("--event-loop", choices=CHOICES, default="auto",
                   help="uvloop (in C), asyncio's own, or auto: uvloop where installed (default)")
    p.add_argument("--port-file", help="write the listening port to this file once ready")
    p.add_argument("-v", "--verbose", action="store_true", help="log requests to stderr")
    p.add_argument("--metrics-port", type=int, metavar="N",
                   help="serve Prometheus metrics at http://HOST:N/metrics (pip install 'transfercore[metrics]')")
    p.add_argument("--config", metavar="FILE",
                   help="read settings from this TOML file: the keys are the long options with _ for - "
                   "(max_size = \"10G\"); options on the command line override it (docs/operating.md)")
    p.add_argument("--check-config", metavar="FILE",
                   help="check FILE and exit: 0 when usable, 2 naming the bad key and line")
    overridable(p)
    p.set_defaults(func=run)


def _tokens(args: argparse.Namespace) -> dict[str, str]:
    lines = list(args.token)
    if args.token_file:
        with open(args.token_file) as f:
            lines += [line.strip() for line in f if line.strip() and not line.startswith("#")]
    tokens: dict[str, str] = {}
    for line in lines:
        owner, sep, token = line.partition(":")
        if not sep or not owner or len(token) < 16:
            raise OptionError(f"token entry {owner or line[:10]!r}... is not OWNER:TOKEN with a token of "
                              "at least 16 characters")
        tokens[token] = owner
    return tokens


def _check_port(value: int) -> None:
    if not 0 <= value <= 65535:
        raise OptionError(f"{value} is not a TCP port (0 to 65535)")


def _check_size(value: str) -> None:
    from ..sizes import parse_size

    parse_size(value, what="the size", minimum=0)


def _check_positive(value: float) -> None:
    if value <= 0:
        raise OptionError(f"{value} must be more than 0")


#: Checks of single values, so that a configuration file's error names its key and line.
CHECKS: dict[str, Any] = {
    "port": _check_port, "metrics_port": _check_port, "max_size": _check_size, "max_header_size": _check_size, "sync_every": _check_size,
    "max_uploads": _check_positive, "expiry": _check_positive, "body_timeout": _check_positive,
    "header_timeout": _check_positive, "event_loop": loop_factory,
    "cpu_affinity": affinity.parse,
}


#: Settings a reload (SIGHUP) cannot change: the listening socket, the storage, the server in use.
RESTART_ONLY = ("root", "driver", "host", "port", "port_file", "state_dir", "metrics_port", "http_server",
                "max_uploads", "event_loop", "cpu_affinity")


@attrs.frozen
class Plan:
    """The settings ``serve-http`` runs with, checked; built again by a reload."""

    args: argparse.Namespace
    config: Any  # protocol.Config
    limits: Any  # app.Limits
    authorize: Any  # app.Authorizer
    server_limits: Any  # server.ServerLimits


def run(args: argparse.Namespace) -> int:
    if args.check_config:
        path = args.check_config
        file = load(path, options(args), CHECKS)
        merged = merge(args, given(args), file.values)
        if merged.root and not os.path.isdir(merged.root):
            raise file.error("root", f"{merged.root} is not a directory")
        try:
            _build(_plan(merged))
        except ConfigError:
            raise
        except TransferCoreError as exc:
            raise ConfigError(str(exc), path=path) from None
        print(f"{path}: ok")
        return int(ExitCode.OK)
    command_line = given(args)
    file_values = load(args.config, options(args), CHECKS).values if args.config else {}
    merged = merge(args, command_line, file_values)
    plan = _plan(merged)

    def rebuild() -> Plan:
        # the file and the token file read again; the command line still overrides them
        values = load(args.config, options(args), CHECKS).values if args.config else {}
        return _plan(merge(args, command_line, values))

    # before the process starts a thread: each takes the CPUs of the thread that starts it (the
    # caller's thread gets its CPUs back: a program or a test may run the command in-process)
    with affinity.kept(affinity.parse(merged.cpu_affinity), None, 1):
        return _serve(_build(plan), plan, rebuild)


def _plan(args: argparse.Namespace) -> Plan:
    """Check the settings that need nothing opened (a reload builds these again)."""
    from ..http.app import Limits, anyone, bearer_tokens
    from ..http.protocol import Config
    from ..http.server import ServerLimits
    from ..sizes import parse_size

    if not 0 <= args.port <= 65535:
        raise OptionError(f"--port {args.port} is not a TCP port (0 to 65535)")
    if args.metrics_port is not None and not 0 <= args.metrics_port <= 65535:
        raise OptionError(f"--metrics-port {args.metrics_port} is not a TCP port (0 to 65535)")
    if bool(args.root) == bool(args.driver):
        raise OptionError("give exactly one of --root DIR or --driver URL")
    if args.expiry <= 0 or args.max_uploads < 1 or args.body_timeout <= 0 or args.header_timeout <= 0:
        raise OptionError("--expiry, --max-uploads, --body-timeout and --header-timeout must be positive")
    if args.http_server == "uvicorn":
        try:
            import uvicorn  # noqa: F401 - checked before anything is opened
        except ImportError:
            raise OptionError("--http-server uvicorn needs uvicorn", hint="pip install 'transfercore[http]'") from None
    loop_factory(args.event_loop)  # uvloop asked for and not installed: said before anything starts
    affinity.check(affinity.parse(args.cpu_affinity), 1)
    tokens = _tokens(args)
    return Plan(
        args=args,
        config=Config(max_size=parse_size(args.max_size, what="--max-size", minimum=0), expiry=args.expiry * 3600),
        limits=Limits(concurrent_uploads=args.max_uploads,
                      sync_bytes=parse_size(args.sync_every, what="--sync-every", minimum=1),
                      body_timeout=args.body_timeout),
        authorize=bearer_tokens(tokens) if tokens else anyone,
        server_limits=ServerLimits(
            max_header_size=parse_size(args.max_header_size, what="--max-header-size", minimum=1024),
            header_timeout=args.header_timeout,
            # the application's own --body-timeout answers first, with the offset to resume from
            body_timeout=args.body_timeout + 5,
        ),
    )


def _build(plan: Plan) -> Any:
    """Make the application (nothing listens yet)."""
    from ..http.app import UploadApp
    from ..http.records import RecordStore
    from ..location import Location
    from ..registry import open_location
    from ..statedir import state_dir

    args = plan.args
    if args.root:
        endpoint = open_location(Location("posix", "/", options={"root": os.path.abspath(args.root)}))
        where = os.path.abspath(args.root)
    else:
        endpoint = open_location(args.driver)
        where = args.driver
    state = args.state_dir or os.path.join(
        state_dir(), "http-uploads", hashlib.sha256(where.encode()).hexdigest()[:16]
    )
    return UploadApp(endpoint.driver, RecordStore(state), base=endpoint.path or "/", config=plan.config,
                     limits=plan.limits, authorize=plan.authorize)


def _serve(app: Any, plan: Plan, rebuild: Callable[[], Plan]) -> int:
    args = plan.args
    upload_app = app
    tokens = _tokens(args)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(message)s")
    if not tokens and args.host not in ("127.0.0.1", "::1", "localhost"):
        logging.getLogger("transfercore.http").warning(
            "serve-http on %s without --token: anyone who reaches the port may upload", args.host
        )
    exporter = None
    if args.metrics_port is not None:
        from ..service.httpmetrics import HttpStats, MetricsMiddleware
        from ..service.metrics import serve_metrics

        stats = HttpStats()
        app = MetricsMiddleware(app, stats)
        exporter = serve_metrics(stats.families, args.host, args.metrics_port)
    try:
        if args.http_server == "uvicorn":
            _serve_uvicorn(app, args)
        else:
            _serve_own(app, upload_app, plan, rebuild)
    finally:
        if exporter is not None:
            exporter.close()
    return int(ExitCode.OK)


def _listening(args: argparse.Namespace, port: int) -> None:
    announce_listening("serve-http", args.host, port, args.port_file)


def _serve_own(app: Any, upload_app: Any, plan: Plan, rebuild: Callable[[], Plan]) -> None:
    import asyncio
    import signal

    from ..http.server import Server
    from ..service.reload import Reloader

    args = plan.args
    server = Server(app, args.host, args.port, plan.server_limits, lifespan_required=True)
    # reloads are said in any case: an operator looks for them after a SIGHUP
    logging.getLogger("transfercore.service").setLevel(logging.INFO)

    def apply(new: Plan) -> None:
        upload_app.reconfigure(config=new.config, limits=new.limits, authorize=new.authorize)
        server.limits = new.server_limits  # new connections take them

    reloader = Reloader(rebuild, apply, current=plan, restart_only=RESTART_ONLY,
                        said="reload: configuration and tokens read again; new requests use them")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, server.stop)
        loop.add_signal_handler(signal.SIGHUP, reloader.reload)
        await server.serve(lambda port: _listening(args, port))

    run_loop(main(), args.event_loop)


def _serve_uvicorn(app: Any, args: argparse.Namespace) -> None:
    import uvicorn

    from ..sizes import parse_size

    config = uvicorn.Config(
        app, host=args.host, port=args.port, http="h11", lifespan="on", access_log=args.verbose, loop=args.event_loop,
        log_level="info" if args.verbose else "warning",
        h11_max_incomplete_event_size=parse_size(args.max_header_size, what="--max-header-size", minimum=1024),
        timeout_keep_alive=int(args.header_timeout),
    )
    server = uvicorn.Server(config)
    startup = server.startup

    async def announced(sockets: Any = None) -> None:
        await startup(sockets=sockets)
        port = server.servers[0].sockets[0].getsockname()[1] if server.servers else args.port
        _listening(args, port)

    server.startup = announced
    server.run()
