"""``transfercore serve``: a GridFTP-compatible server over any storage driver."""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import signal
import sys
from typing import Any

import attrs

from ..errors import ListenError, OptionError, TransferCoreError
from ..eventloop import CHOICES, loop_factory, loop_name
from ..eventloop import run as run_loop
from ..service import affinity
from ..service.config import ConfigError, ConfigFile, given, load, merge, options, overridable
from ..service.listening import announce_listening
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
    p.add_argument("--max-sessions", type=int, default=64, help="concurrent logged-in sessions (default 64)")
    p.add_argument("--workers", type=_workers_arg, default=1, metavar="N",
                   help="processes serving sessions from the one port, or auto: one per core this process "
                        "may run on (default 1; the limits hold for all of them together; more than one "
                        "uses more cores for many small files)")
    p.add_argument("--cpu-affinity", default="auto", metavar="auto|off|CPUS",
                   help="auto (default): each worker of --workers N on a core of its own when there are N "
                   "(hand-offs between a process's threads then stay on one core), a single process on "
                   "one core of a machine of at most 2; off: never; CPU numbers (0,2-3): the process, or "
                   "worker i, on the i-th of them")
    p.add_argument("--event-loop", choices=CHOICES, default="auto",
                   help="the event loop sessions run on: uvloop (in C, the faster for many small files), "
                   "asyncio's own, or auto: uvloop where installed (default)")
    g = p.add_argument_group(
        "GSI (gsiftp://)",
        "X.509 proxy authentication and DCAU/PROT data-channel protection, as Globus does it.  "
        "Any of these options turns GSI on; each defaults to the Globus location.",
    )
    g.add_argument("--gsi", action="store_true", help="turn GSI on with the default locations below")
    g.add_argument("--host-cert", metavar="FILE",
                   help="host certificate (default $X509_USER_CERT or /etc/grid-security/hostcert.pem)")
    g.add_argument("--host-key", metavar="FILE",
                   help="host key, owner-only (default $X509_USER_KEY or /etc/grid-security/hostkey.pem)")
    g.add_argument("--ca-dir", metavar="DIR",
                   help="trusted CAs with signing policies (default $X509_CERT_DIR or /etc/grid-security/certificates)")
    g.add_argument("--gridmap", metavar="FILE",
                   help="grid-mapfile of allowed subjects (default $GRIDMAP or /etc/grid-security/grid-mapfile)")
    g.add_argument(
        "--allow-cleartext-passwords",
        action="store_true",
        help="accept USER/PASS from non-loopback addresses, where passwords cross the network readable "
        "by anyone on the path (off by default: only 127.0.0.1/::1 may use passwords)",
    )
    lim = p.add_argument_group("limits", "bounds one client cannot exhaust")
    lim.add_argument("--login-timeout", type=float, default=30.0, metavar="S",
                     help="close a connection that has not logged in after S seconds (default 30)")
    lim.add_argument("--max-unauthenticated", type=int, default=256, metavar="N",
                     help="connections not yet logged in; the oldest is dropped for a newcomer (default 256)")
    lim.add_argument("--max-unauthenticated-per-address", type=int, default=64, metavar="N",
                     help="the same, per client address (default 64)")
    lim.add_argument("--max-sessions-per-address", type=int, default=32, metavar="N",
                     help="logged-in sessions per client address (default 32)")
    lim.add_argument("--idle-eviction", type=float, default=60.0, metavar="S",
                     help="when the sessions are full, a new login closes the session idle longest, "
                     "if it has been idle S seconds (no command, no transfer; default 60)")
    lim.add_argument("--max-spool", default="4G", metavar="SIZE",
                     help="largest upload without ALLO, spooled beside its destination (default 4G)")
    lim.add_argument(
        "--spool-dir",
        metavar="DIR",
        help="spool uploads without ALLO here instead of beside their destination (durably: they get "
        "restart markers and can resume either way, where the storage has local paths)",
    )
    lim.add_argument("--failed-login-delay", type=float, default=0.5, metavar="S",
                     help="wait after a failed login from an address, doubling per failure up to 8 s (default 0.5)")
    p.add_argument("--port-file", help="write the listening port to this file once ready")
    p.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="log sessions (connect, login, end) and transfers (start; end with bytes and outcome) to stderr",
    )
    svc = p.add_argument_group(
        "service",
        "Running as a service (docs/operating.md).  SIGHUP re-reads the configuration file, the users "
        "file, the grid-mapfile and the CRLs, and reopens the log files.",
    )
    svc.add_argument("--config", metavar="FILE",
                     help="read settings from this TOML file: the keys are the long options with _ for - "
                     "(anonymous_write = true); options on the command line override it")
    svc.add_argument("--check-config", metavar="FILE",
                     help="check FILE and what it names (users file, certificates, root) and exit: 0 when "
                     "usable, 2 naming the bad key and line")
    svc.add_argument("--transfer-log", metavar="FILE",
                     help="append one line per finished or failed transfer, in the Globus server's "
                     "-log-transfer format plus DURABLE= and CHECKSUM=")
    svc.add_argument("--session-log", metavar="FILE",
                     help="append one line per session start, login and end (remote address, user)")
    svc.add_argument("--transfer-log-checksum", metavar="ALGORITHM",
                     help="after each complete upload, read it back for CHECKSUM= in the transfer log "
                     "(adler32, md5, sha256, ...; the storage's own checksum when it has one)")
    svc.add_argument("--metrics-port", type=int, metavar="N",
                     help="serve Prometheus metrics at http://HOST:N/metrics (needs prometheus_client: "
                     "pip install 'transfercore[metrics]')")
    overridable(p)
    p.set_defaults(func=run)


def _check_workers(args: argparse.Namespace) -> None:
    from ..gridftp.sharedstate import CAPACITY, MAX_WORKERS

    if not 1 <= args.workers <= MAX_WORKERS:
        raise OptionError(f"--workers {args.workers}: give 1 to {MAX_WORKERS}")
    if args.workers == 1:
        return
    if args.max_sessions + args.max_unauthenticated > CAPACITY // 2:
        raise OptionError(f"--max-sessions plus --max-unauthenticated may be at most {CAPACITY // 2} with "
                          "--workers above 1 (the workers' shared tables are that large)")


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


def _gsi_config(args: argparse.Namespace) -> Any:
    if not (args.gsi or args.host_cert or args.host_key or args.ca_dir or args.gridmap):
        return None
    from ..gridftp.gsi import GSIConfig, GSIConfigError, GSIPaths

    paths = GSIPaths.resolve(host_cert=args.host_cert, host_key=args.host_key, ca_dir=args.ca_dir,
                             gridmap=args.gridmap)
    try:
        return GSIConfig.load(paths)
    except GSIConfigError as exc:
        raise OptionError(str(exc)) from None


def _check_port(value: int) -> None:
    if not 0 <= value <= 65535:
        raise UsageError(f"{value} is not a TCP port (0 to 65535; 0 picks a free one)")


def _check_marker_interval(value: float) -> None:
    if value < 0.1:
        raise OptionError("must be at least 0.1 seconds")


def _check_positive(value: float) -> None:
    if value <= 0:
        raise OptionError(f"{value} must be more than 0")


def workers_count(value: int | str) -> int:
    """``--workers``: a number, or ``auto`` for one worker per core this process may run on."""
    from ..gridftp.sharedstate import MAX_WORKERS

    if value == "auto":
        return min(len(os.sched_getaffinity(0)), MAX_WORKERS)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)  # (a configuration file's value arrives as text)
    if isinstance(value, bool) or not isinstance(value, int):
        raise OptionError(f"{value!r} is neither a number of processes nor auto")
    return value


def _workers_arg(text: str) -> int:
    try:
        return workers_count(text)
    except OptionError:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of processes or auto") from None


def _check_workers_setting(value: int | str) -> None:
    _check_positive(workers_count(value))


def _check_size(value: str) -> None:
    from ..sizes import parse_size

    parse_size(value, what="max_spool", minimum=1)


def _check_checksum(value: str) -> None:
    from .. import checksums

    checksums.new(value)


#: Checks of single values, so that a configuration file's error names its key and line.
CHECKS: dict[str, Any] = {
    "port": _check_port,
    "metrics_port": _check_port,
    "passive_ports": lambda v: _port_range(v),
    "marker_interval": _check_marker_interval,
    "max_spool": _check_size,
    "transfer_log_checksum": _check_checksum,
    "event_loop": loop_factory,
    "workers": _check_workers_setting,
    "cpu_affinity": affinity.parse,
    **{
        key: _check_positive
        for key in ("idle_timeout", "data_timeout", "max_sessions", "login_timeout", "max_unauthenticated",
                    "max_unauthenticated_per_address", "max_sessions_per_address")
    },
}

#: Settings a reload cannot change: the listening socket, the storage, the metrics endpoint.
#: How often each worker of several publishes its figures for the metrics endpoint (seconds).
METRICS_PUBLISH = 1.0

RESTART_ONLY = ("root", "driver", "host", "port", "metrics_port", "port_file", "workers", "event_loop",
                "cpu_affinity")


@attrs.frozen
class Plan:
    """Everything ``serve`` runs with, checked; built again by a reload."""

    args: argparse.Namespace
    config: Any  # ServerConfig
    users: Any  # UserDB | None


def read_config(path: str, args: argparse.Namespace) -> ConfigFile:
    return load(path, options(args), CHECKS)


def settings(args: argparse.Namespace) -> argparse.Namespace:
    """The command line over the configuration file (if any) over the defaults."""
    file = read_config(args.config, args) if args.config else None
    merged = merge(args, given(args), file.values if file else {})
    merged.workers = workers_count(merged.workers)  # a file's "auto" counted as the command line's is
    return merged


def build(args: argparse.Namespace) -> Plan:
    """Check every setting and load the users file and GSI credentials, CAs, CRLs and grid-mapfile."""
    from ..gridftp.limits import Limits
    from ..gridftp.server import ServerConfig
    from ..gridftp.session import SessionConfig
    from ..gridftp.users import UserDB
    from ..sizes import parse_size

    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port {args.port} is not a TCP port (0 to 65535; 0 picks a free one)")
    if args.metrics_port is not None and not 0 <= args.metrics_port <= 65535:
        raise UsageError(f"--metrics-port {args.metrics_port} is not a TCP port (0 to 65535)")
    if bool(args.root) == bool(args.driver):
        raise OptionError("give exactly one of --root DIR or --driver URL")
    if args.marker_interval < 0.1:
        raise OptionError("--marker-interval must be at least 0.1 seconds")
    _check_workers(args)
    affinity.check(affinity.parse(args.cpu_affinity), args.workers)
    loop_factory(args.event_loop)  # uvloop asked for and not installed: said before anything starts
    users = UserDB.load(args.users) if args.users else None
    gsi = _gsi_config(args)
    if not (args.anonymous or args.anonymous_write or (users and len(users)) or gsi):
        raise OptionError(
            "nobody could log in",
            hint="pass --gsi, --anonymous, --anonymous-write, or --users FILE with entries made by --add-user",
        )
    try:
        limits = Limits(
            max_sessions=args.max_sessions,
            max_sessions_per_address=args.max_sessions_per_address,
            max_unauthenticated=args.max_unauthenticated,
            max_unauthenticated_per_address=args.max_unauthenticated_per_address,
            login_timeout=args.login_timeout,
            idle_timeout=args.idle_timeout,
            idle_eviction=args.idle_eviction,
            failure_delay=args.failed_login_delay,
        )
    except ValueError as exc:
        raise OptionError(str(exc)) from None
    if args.transfer_log_checksum:
        _check_checksum(args.transfer_log_checksum)
    for option, path in (("transfer-log", args.transfer_log), ("session-log", args.session_log)):
        if path:
            try:
                with open(path, "a"):
                    pass
            except OSError as exc:
                raise OptionError(f"--{option} {path}: cannot append to it: {exc.strerror or exc}") from None
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
        base_path="/",
        gsi=gsi,
        limits=limits,
        max_spool=parse_size(args.max_spool, what="--max-spool", minimum=1),
        allow_cleartext_passwords=args.allow_cleartext_passwords,
        spool_dir=args.spool_dir,
    )
    return Plan(args, config, users)


def open_endpoint(args: argparse.Namespace) -> Any:
    from ..location import Location
    from ..registry import open_location

    if args.root:
        # The posix driver confined to the root: it refuses '..' and symlinks leaving it.
        # O_DIRECT where the file system allows: an upload is not read back while
        # it arrives, and buffered writes would keep up to two restart-marker
        # intervals of it (5 s each) in the page cache before dropping them.
        options = {"root": os.path.abspath(args.root), "direct": "auto"}
        return open_location(Location("posix", "/", options=options))
    return open_location(args.driver)


def check_config(args: argparse.Namespace) -> int:
    """``--check-config FILE``: everything ``serve`` would check before listening, then exit."""
    path = args.check_config
    file = read_config(path, args)
    merged = merge(args, given(args), file.values)
    try:
        build(merged)
        if merged.root and not os.path.isdir(merged.root):
            raise file.error("root", f"{merged.root} is not a directory")
        open_endpoint(merged)
    except ConfigError:
        raise
    except TransferCoreError as exc:
        raise ConfigError(str(exc), path=path) from None
    print(f"{path}: ok")
    return int(ExitCode.OK)


def supervise(args: argparse.Namespace) -> int:
    """``--workers N``: bind the port once, then run N copies of this command as workers on it."""
    import socket

    from ..gridftp.sharedstate import SharedRegion
    from ..service.supervisor import Supervisor

    try:
        listening = socket.create_server((args.host, args.port), backlog=1024, reuse_port=False)
    except OSError as exc:
        raise ListenError.on(args.host, args.port, exc) from None
    region = SharedRegion.create()
    port = listening.getsockname()[1]
    #: the counters of workers that died, kept so the totals never go back
    retired: list[dict[str, Any]] = []
    exporter = None

    def forget(index: int) -> None:
        published = region.worker_stats(index)
        if published:
            snap = json.loads(published)
            snap["live"] = {"received": snap["live"]["received"], "sent": snap["live"]["sent"], "sessions": {}}
            retired.append(snap)
        region.forget_worker(index)

    def collect() -> Any:
        from ..service.metrics import families
        from ..service.stats import merged

        snaps = [json.loads(b) for b in (region.worker_stats(i) for i in range(args.workers)) if b]
        stats, live = merged([*retired, *snaps])
        rss = max((s.get("rss", 0) for s in snaps), default=0)
        return families(stats, lambda: live, rss=rss)

    def started() -> None:
        nonlocal exporter
        if args.metrics_port is not None:
            from ..service.metrics import serve_metrics

            exporter = serve_metrics(collect, args.host, args.metrics_port)
        announce_listening("serve", args.host, port, args.port_file)

    supervisor = Supervisor(args.argv, args.workers, listening, region.fd, forget)
    try:
        return supervisor.run(started)
    finally:
        if exporter is not None:
            exporter.close()
        listening.close()
        region.close()


def run(args: argparse.Namespace) -> int:
    if args.check_config:
        return check_config(args)
    command_line = given(args)
    args = settings(args)
    if args.add_user:
        return _add_user(args)
    from ..service.supervisor import worker_spec

    spec = worker_spec()
    if spec is None and args.workers > 1:
        build(args)  # every setting checked once, before any worker starts
        if args.root and not os.path.isdir(args.root):
            raise OptionError(f"--root {args.root} is not a directory")
        return supervise(args)

    from ..gridftp.workers import Worker

    worker = Worker.from_spec(spec) if spec is not None else None
    plan = build(args)
    # before this process starts a thread: each takes the CPUs of the thread that starts it; the
    # caller's thread gets its CPUs back (a program or a test may run the command in-process)
    with affinity.kept(affinity.parse(args.cpu_affinity), spec.index if spec is not None else None,
                       spec.count if spec is not None else 1) as cpu:
        return _serve(args, command_line, plan, spec, worker, cpu)


def _serve(args: argparse.Namespace, command_line: Any, plan: Plan, spec: Any, worker: Any, cpu: int | None) -> int:
    """Serve in this process (alone, or as one worker of ``--workers N``) until stopped."""
    from ..collector import freeze_startup
    from ..gridftp.server import GridFTPServer
    from ..service import translog
    from ..service.reload import Reloader
    from ..service.supervisor import say_ready, supervisor_gone

    endpoint = open_endpoint(args)
    driver, base_path = endpoint.driver, endpoint.path or "/"
    config = attrs.evolve(plan.config, base_path=base_path)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(message)s",
    )
    # reloads are said in any case: an operator looks for them after a SIGHUP
    logging.getLogger("transfercore.service").setLevel(logging.INFO)
    translog.configure(args.transfer_log, args.session_log, verbose=args.verbose)

    if args.allow_cleartext_passwords and (plan.users or args.anonymous or args.anonymous_write):
        logging.getLogger("transfercore.gridftp").warning(
            "--allow-cleartext-passwords: USER/PASS logins from other hosts send passwords unencrypted"
        )

    # Imported here: every other subcommand would pay for asyncio at start-up.
    import asyncio

    async def main() -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)  # type: ignore[union-attr]
        server = GridFTPServer(config, driver, plan.users, worker=worker)
        server.checksum_algorithm = args.transfer_log_checksum
        exporter = None
        if args.metrics_port is not None and worker is None:
            from ..service.metrics import start_exporter

            exporter = start_exporter(server.stats, args.host, args.metrics_port, live=server.live_stats)

        def apply(new: Plan) -> None:
            server.reconfigure(attrs.evolve(new.config, base_path=base_path), new.users)
            server.checksum_algorithm = new.args.transfer_log_checksum
            translog.configure(new.args.transfer_log, new.args.session_log, verbose=args.verbose)

        def rebuild() -> Plan:
            # the file and the files it names read again; the command line still overrides them
            file = read_config(args.config, args) if args.config else None
            return build(merge(args, command_line, file.values if file else {}))

        reloader = Reloader(rebuild, apply, current=plan, restart_only=RESTART_ONLY, counted=server.stats.reload)
        loop.add_signal_handler(signal.SIGHUP, reloader.reload)
        port = await server.start()
        logging.getLogger("transfercore.gridftp").info(
            "sessions run on the %s event loop%s", loop_name(loop), "" if cpu is None else f", on CPU {cpu}")
        freeze_startup()
        if spec is None:
            announce_listening("serve", args.host, port, args.port_file)
        else:
            say_ready(spec)
            watch = asyncio.create_task(_stop_without(spec, task))  # type: ignore[arg-type]
            if args.metrics_port is not None:
                publish = asyncio.create_task(_publish(server, spec))
                watch.add_done_callback(lambda _: publish.cancel())
        try:
            await server.serve_forever()
        finally:
            if spec is not None:
                watch.cancel()
            await server.close()
            if exporter is not None:
                exporter.close()

    async def _publish(server: Any, spec: Any) -> None:
        # the supervisor serves /metrics: it adds up what each worker last published
        import resource

        while True:
            snap = server.stats.snapshot(server.live_stats(disk=spec.index == 0))
            snap["rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            server.worker.region.put_stats(spec.index, json.dumps(snap).encode())
            await asyncio.sleep(METRICS_PUBLISH)

    async def _stop_without(spec: Any, task: asyncio.Task[None]) -> None:
        # a worker whose supervisor is gone would hold the port with nobody to stop it
        while not supervisor_gone(spec):
            await asyncio.sleep(0.5)
        task.cancel()

    try:
        run_loop(main(), args.event_loop)
    except asyncio.CancelledError:
        pass
    return int(ExitCode.OK)
