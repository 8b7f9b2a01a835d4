"""The control-session state machine, without I/O: the command handlers.

:meth:`Session.handle` maps one :class:`~.control.Command` to a list of
outputs: :class:`~.control.Reply` records to send at once, and *actions*
the I/O layer must carry out (check a password, open a listener, touch the
storage, run a transfer; see :mod:`.actions`).  The I/O layer reports
results back through the ``*_done`` methods, which return the replies to
send.  Everything a client can change (login, TYPE/MODE, pending REST and
ALLO, RNFR, data channel setup, marker intervals) lives here, so it is
tested without a socket.  The states, the changes between them and how each
verb is treated are tables (:mod:`.sessiontable`); the handlers are here.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable

import attrs

from ..contract import ObjectInfo
from ..errors import PathEscapesRoot, RangeSyntaxError, TransferAborted, TransferCoreError
from ..ranges import RangeSet
from . import arguments as A
from . import listing
from .actions import (
    DEFAULT_MARKER_INTERVAL,
    Abort,
    Action,
    Active,
    Authenticate,
    Checksum,
    Close,
    DataSetup,
    Listing,
    MakeSymlink,
    OpenPassive,
    Output,
    Passive,
    Rename,
    Retrieve,
    SetAttributes,
    StorageOp,
    Store,
)
from .control import BadLine, Command, Reply
from .errors import BadArgument, LocalProtocolError
from .gsi import dataprot
from .gsi.dataprot import DataProtection
from .hostport import HostPort, epsv_text, parse_eprt, parse_ftp_hostport, parse_spor, pasv_text
from .paths import resolve
from .replies import error_reply
from .sessiontable import COMMANDS, TRANSITIONS, Change, CommandSpec, State

# The actions and the tables have their own modules; they stay importable from here.
__all__ = [
    "ANONYMOUS_NAMES",
    "COMMANDS",
    "DEFAULT_MARKER_INTERVAL",
    "NOT_LOGGED_IN",
    "OK",
    "TRANSITIONS",
    "Abort",
    "Action",
    "Active",
    "Authenticate",
    "Change",
    "Checksum",
    "Close",
    "CommandSpec",
    "DataSetup",
    "Listing",
    "MakeSymlink",
    "OpenPassive",
    "Output",
    "Passive",
    "Rename",
    "Retrieve",
    "Session",
    "SessionConfig",
    "SetAttributes",
    "State",
    "StorageOp",
    "Store",
    "feat_lines",
]


@attrs.frozen
class SessionConfig:
    anonymous: bool = False
    anonymous_write: bool = False
    banner: str = "transfercore GridFTP server ready."
    max_commands: int = 1_000_000
    max_login_failures: int = 3
    marker_interval: float = DEFAULT_MARKER_INTERVAL
    checksums: tuple[str, ...] = ("MD5", "ADLER32", "CRC32C", "SHA1", "SHA256", "SHA512")
    #: The driver's namespace operations (``Driver.namespace()``), which decide what
    #: SITE CHMOD/UTIME/SYMLINK* may do; ``None``: not known, the driver answers.
    namespace: frozenset[str] | None = None


NOT_LOGGED_IN = Reply.one(530, "Please login with USER and PASS.")
OK = Reply.one(200, "Command Successful.")
# Replies every file of a tree hears, made once.
STARTED = Reply.one(150, "Beginning transfer.")
STORED = Reply.one(226, "Transfer Complete.")
LISTED = Reply.one(226, "Transfer complete.")

#: Login names that mean "no account of my own": Globus clients send ``:globus-mapping:``
#: to ask for the account their certificate maps to, which without GSI is the anonymous one.
ANONYMOUS_NAMES = ("anonymous", "ftp", ":globus-mapping:")


def feat_lines(checksums: tuple[str, ...]) -> tuple[str, ...]:
    digits = {"MD5": 10, "ADLER32": 10, "CRC32C": 10, "SHA1": 10, "SHA256": 11, "SHA512": 12}
    cksm = "".join(f"{alg}:{digits.get(alg, 10)};" for alg in checksums)
    return (
        "Extensions supported:",
        "UTF8",
        "SIZE",
        "MDTM",
        "REST STREAM",
        "MLST Type*;Size*;Modify*;Perm*;UNIX.mode*;",
        "PARALLEL",
        "DCAU",
        "ERET",
        "ESTO",
        "SPAS",
        "SPOR",
        "TREV",
        "MLSR",
        f"CKSM {cksm}",
        "End.",
    )


class Session:
    """One control connection's protocol state."""

    def __init__(self, config: SessionConfig | None = None, *, peer_host: str = "127.0.0.1") -> None:
        self.config = config or SessionConfig()
        self.peer_host = peer_host
        self.state = State.NEED_USER
        self.user: str | None = None
        self.writable = False
        self.type = "A"
        self.mode = "S"
        self.cwd = "/"
        self.restart: RangeSet | None = None
        self.alloc: int | None = None
        self.rename_from: str | None = None
        self.symlink_from: str | None = None
        self.data: DataSetup | None = None
        self.passive_kind: str | None = None
        self.parallelism = 1
        self.retr_markers: float | None = None
        self.store_buffer: int | None = None
        self.retr_buffer: int | None = None
        self.restart_interval = self.config.marker_interval
        self.perf_interval = self.config.marker_interval
        self.client_info = ""
        self.commands_seen = 0
        self.login_failures = 0
        self.gsi_identity: str | None = None
        self.protection = DataProtection()
        self._can_dcau = False

    # -- entry points ------------------------------------------------------------

    def _change(self, change: Change) -> None:
        """The one place the state changes, through :data:`TRANSITIONS`."""
        new = TRANSITIONS.get((self.state, change))
        if new is None:
            raise LocalProtocolError(f"no transition from {self.state.value} on {change.value}")
        self.state = new

    def greeting(self) -> Reply:
        return Reply.one(220, self.config.banner)

    def handle(self, event: Command | BadLine) -> list[Output]:
        if self.state is State.CLOSED:
            return []
        self.commands_seen += 1
        if self.commands_seen > self.config.max_commands:
            self._change(Change.CLOSED)
            return [Reply.one(421, "Too many commands in one session; closing. Reconnect to go on."), Close()]
        if isinstance(event, BadLine):
            return [Reply.one(500, f"Syntax error: {event.reason}.")]
        verb = event.verb
        if self.state is State.TRANSFER:
            return self._during_transfer(event)
        spec = COMMANDS.get(verb)
        if spec is None:
            # A refused command changes nothing (a pending REST survives it).
            return [Reply.one(500, "Command not supported.")]
        if not spec.keeps_rest:
            self.restart = None
        if self.state is not State.READY and spec.login:
            return [NOT_LOGGED_IN]
        if spec.writes and not self.writable:
            return [Reply.one(550, "Permission denied: this login is read-only.")]
        if verb not in ("RNTO", "RNFR"):
            # RNTO must follow RNFR immediately.
            self.rename_from = None
        try:
            return list(_HANDLERS[verb](self, event.arg))
        except BadArgument as exc:
            return [Reply.one(501, f"Syntax error in parameters: {exc}")]
        except PathEscapesRoot as exc:
            return [Reply.one(550, f"{exc}")]
        except (RangeSyntaxError, TransferCoreError) as exc:
            return [Reply.one(501, f"{exc}")]

    # -- results reported by the I/O layer ----------------------------------------

    def login_done(self, ok: bool, *, writable: bool = False, reason: str | None = None) -> list[Output]:
        """The one reply to a PASS: ``reason`` says why a login was refused, when it is not the password."""
        if ok:
            self._change(Change.LOGGED_IN)
            self.writable = writable
            return [Reply.one(230, f"User {self.user} logged in.")]
        self.login_failures += 1
        self._change(Change.LOGIN_REFUSED)
        self.user = None
        if self.login_failures >= self.config.max_login_failures:
            self._change(Change.CLOSED)
            return [Reply.one(421, "Too many failed logins; closing."), Close()]
        return [Reply.one(530, reason or "Login incorrect.")]

    def gsi_authenticated(self, identity: str, *, delegated: bool) -> None:
        """The control channel is GSI-secured for ``identity``; DCAU A is the default with a credential."""
        self.gsi_identity = identity
        self._can_dcau = delegated
        self.protection = dataprot.for_gsi_session() if delegated else DataProtection()

    def passive_done(self, kind: str, addresses: tuple[HostPort, ...]) -> list[Output]:
        self.data = Passive()
        self.passive_kind = kind
        if kind == "PASV":
            return [Reply.one(227, pasv_text(addresses[0]))]
        if kind == "EPSV":
            return [Reply.one(229, epsv_text(addresses[0].port))]
        return [Reply(229, ("Entering Striped Passive Mode.", *(a.ftp_form() for a in addresses), "End"))]

    def storage_done(self, op: StorageOp, info: ObjectInfo | None) -> list[Output]:
        """The reply to a namespace command the I/O layer carried out.

        ``info`` is the object's stat for the verbs that look at an object
        (SIZE, MDTM, MLST, CWD, RNFR); ``None`` for the ones that change the
        namespace (MKD, RMD, DELE), which succeeded.
        """
        verb = op.verb
        if verb == "MKD":
            quoted = op.path.replace('"', '""')
            return [Reply.one(257, f'"{quoted}" directory created.')]
        if verb in ("RMD", "DELE"):
            return [Reply.one(250, f"{verb} command successful.")]
        assert info is not None
        if verb == "SIZE":
            if info.is_dir:
                return [Reply.one(550, f"{op.path}: not a plain file.")]
            return [Reply.one(213, str(info.size))]
        if verb == "MDTM":
            return [Reply.one(213, listing.ftp_time(info.mtime_ns))]
        if verb == "MLST":
            line = listing.mlst_line(info, op.path, writable=self.writable)
            if line is None:
                return [Reply.one(550, "The name cannot be shown on the control channel.")]
            return [Reply(250, (f"status of {op.path}", line, "End."))]
        if verb == "STAT":
            line = listing.ls_line(info, op.path.rstrip("/").rsplit("/", 1)[-1] or "/")
            if line is None:
                return [Reply.one(550, "The name cannot be shown on the control channel.")]
            return [Reply(213, (f"status of {op.path}", line, "End."))]
        if verb == "SYMLINKFROM":
            self.symlink_from = op.path
            return [Reply.one(350, "OK. Send SITE SYMLINKTO with symlink name.")]
        if verb == "CWD":
            if not info.is_dir:
                return [Reply.one(550, f"{op.path}: not a directory.")]
            self.cwd = op.path
            return [Reply.one(250, "CWD command successful.")]
        if verb == "RNFR":
            self.rename_from = op.path
            return [Reply.one(350, "Ready for RNTO.")]
        return [Reply.one(502, f"{verb} is not implemented.")]

    def attributes_done(self, op: SetAttributes | MakeSymlink) -> list[Output]:
        """SITE CHMOD, UTIME or SYMLINKTO was carried out."""
        return [Reply.one(250, "OK.")]

    def urgent(self, event: Command | BadLine) -> bool:
        """Whether ``event`` is answered at once rather than queued behind the transfer in progress.

        Commands sent while a transfer runs (``globus-url-copy -pp`` pipelines
        the next file's) wait for its final reply and are answered in order;
        only ABOR, and STAT without a path (how is the transfer going?), act on
        the transfer itself.
        """
        if self.state is not State.TRANSFER or not isinstance(event, Command):
            return False
        return event.verb == "ABOR" or (event.verb == "STAT" and not event.arg.strip())

    # -- results of actions the shell carried out: the session decides their replies --

    def renamed(self, op: Rename) -> Reply:
        return Reply.one(250, "Rename successful.")

    def checksum_done(self, op: Checksum, value: str) -> Reply:
        return Reply.one(213, value)

    def command_failed(self, exc: BaseException) -> Reply:
        """A command's action failed (storage, namespace, checksum): one reply for it."""
        return error_reply(exc)

    def passive_failed(self, exc: BaseException) -> Reply:
        return Reply.one(425, f"Cannot open a passive connection: {exc}")

    def closing(self, reason: str) -> Reply:
        """The server ends the session (idle, full, making room for another login): 421."""
        return Reply.one(421, reason)

    # -- data-transfer events: the session decides their replies -------------------

    def transfer_started(self, action: Store | Retrieve | Listing, *, spooled: bool = False) -> Reply:
        """The data connection is about to carry ``action``: the 150 preliminary reply."""
        if isinstance(action, Listing):
            return Reply.one(150, "Opening ASCII mode data connection for listing.")
        if isinstance(action, Retrieve):
            return Reply.one(150, "Opening BINARY mode data connection.")
        if spooled:
            return Reply.one(150, "Beginning transfer (size unknown: spooling until the end).")
        return STARTED

    def transfer_finished(self, action: Store | Retrieve | Listing) -> Reply:
        """Every byte arrived (and, for an upload, the storage published it): 226."""
        return LISTED if isinstance(action, Listing) else STORED

    def transfer_failed(self, exc: BaseException, *, aborted: bool = False) -> Reply:
        """The transfer ended with ``exc``; an ABOR the client sent is what it hears about."""
        return error_reply(TransferAborted("transfer aborted on request") if aborted else exc, during_transfer=True)

    def abort_finished(self) -> Reply:
        """ABOR stopped the transfer (426 went out for it) or found none."""
        return Reply.one(226, "Abort successful.")

    def transfer_done(self, *, cached: bool = False) -> None:
        """A transfer ended (well or not): its one-shot settings are spent.

        ``cached``: its MODE E data connections stay open for the next
        transfer (data-channel caching), so the data setup stays too.
        """
        self._change(Change.TRANSFER_ENDED)
        self.restart = None
        self.alloc = None
        if not (cached and self.mode == "E"):
            self.data = None

    # -- helpers ---------------------------------------------------------------

    def _path(self, arg: str) -> str:
        if not arg.strip():
            raise BadArgument("a path is required")
        return resolve(self.cwd, arg)

    def _need_data(self) -> DataSetup:
        if self.data is None:
            raise BadArgument("no data connection set up; send PASV, EPSV, SPAS, PORT, EPRT or SPOR first")
        return self.data

    def _during_transfer(self, cmd: Command) -> list[Output]:
        if cmd.verb == "ABOR":
            return [Abort()]
        if cmd.verb == "NOOP":
            return [OK]
        if cmd.verb == "QUIT":
            self._change(Change.CLOSED)
            return [Abort(), Reply.one(221, "Goodbye."), Close()]
        if cmd.verb == "STAT":
            return [Reply.one(213, "Transfer in progress.")]
        return [Reply.one(503, "A transfer is in progress; wait for its reply or send ABOR.")]

    def _start_transfer(self, action: Store | Retrieve | Listing) -> list[Output]:
        self._change(Change.TRANSFER_STARTED)
        return [action]

    # -- login -------------------------------------------------------------------

    def _cmd_USER(self, arg: str) -> list[Output]:
        name = arg.strip()
        if not name:
            raise BadArgument("USER needs a name")
        if self.state is State.READY:
            return [Reply.one(503, "Already logged in.")]
        self.user = name
        self._change(Change.USER_GIVEN)
        return [Reply.one(331, "Please specify the password.")]

    def _cmd_PASS(self, arg: str) -> list[Output]:
        if self.state is State.READY:
            return [Reply.one(503, "Already logged in.")]
        if self.state is not State.NEED_PASS or self.user is None:
            return [Reply.one(503, "Login with USER first.")]
        anonymous = self.user in ANONYMOUS_NAMES
        if self.user == ":globus-mapping:" and self.gsi_identity is not None:
            anonymous = False  # over GSI it asks for the grid-mapfile's account
        if anonymous:
            if self.config.anonymous or self.config.anonymous_write:
                return self.login_done(True, writable=self.config.anonymous_write)
            return self.login_done(False)
        return [Authenticate(self.user, arg)]

    def _cmd_QUIT(self, arg: str) -> list[Output]:
        self._change(Change.CLOSED)
        return [Reply.one(221, "Goodbye."), Close()]

    # -- information ---------------------------------------------------------------

    def _cmd_SYST(self, arg: str) -> list[Output]:
        return [Reply.one(215, "UNIX Type: L8")]

    def _cmd_FEAT(self, arg: str) -> list[Output]:
        return [Reply(211, feat_lines(self.config.checksums))]

    def _cmd_HELP(self, arg: str) -> list[Output]:
        verbs = sorted(COMMANDS)
        return [Reply(214, ("The following commands are recognized:", " ".join(verbs), "End."))]

    def _cmd_NOOP(self, arg: str) -> list[Output]:
        return [OK]

    def _cmd_STAT(self, arg: str) -> list[Output]:
        if arg.strip():
            # As Globus: an ls line for a file or directory, 550 for a missing path.
            return [StorageOp("STAT", self._path(arg))]
        return [
            Reply(
                211, ("transfercore status:", f"TYPE {self.type}, MODE {self.mode}, CWD {self.cwd}", "End.")
            )
        ]

    def _cmd_PWD(self, arg: str) -> list[Output]:
        quoted = self.cwd.replace('"', '""')
        return [Reply.one(257, f'"{quoted}" is current directory.')]

    def _cmd_CWD(self, arg: str) -> list[Output]:
        return [StorageOp("CWD", self._path(arg))]

    def _cmd_CDUP(self, arg: str) -> list[Output]:
        return (
            [StorageOp("CWD", resolve(self.cwd, ".."))]
            if self.cwd != "/"
            else [Reply.one(250, "CWD command successful.")]
        )

    def _cmd_SIZE(self, arg: str) -> list[Output]:
        return [StorageOp("SIZE", self._path(arg))]

    def _cmd_MDTM(self, arg: str) -> list[Output]:
        return [StorageOp("MDTM", self._path(arg))]

    def _cmd_MLST(self, arg: str) -> list[Output]:
        return [StorageOp("MLST", resolve(self.cwd, arg.strip()))]

    # -- namespace changes -----------------------------------------------------------

    def _cmd_MKD(self, arg: str) -> list[Output]:
        return [StorageOp("MKD", self._path(arg))]

    def _cmd_RMD(self, arg: str) -> list[Output]:
        return [StorageOp("RMD", self._path(arg))]

    def _cmd_DELE(self, arg: str) -> list[Output]:
        return [StorageOp("DELE", self._path(arg))]

    def _cmd_RNFR(self, arg: str) -> list[Output]:
        self.rename_from = None
        return [StorageOp("RNFR", self._path(arg))]

    def _cmd_RNTO(self, arg: str) -> list[Output]:
        src, self.rename_from = self.rename_from, None
        if src is None:
            return [Reply.one(503, "RNTO must follow a successful RNFR.")]
        return [Rename(src, self._path(arg))]

    # -- settings ----------------------------------------------------------------------

    def _cmd_TYPE(self, arg: str) -> list[Output]:
        self.type = A.parse_type(arg)
        return [Reply.one(200, f"Type set to {self.type}.")]

    def _cmd_MODE(self, arg: str) -> list[Output]:
        self.mode = A.parse_mode(arg)
        return [Reply.one(200, f"Mode set to {self.mode}.")]

    def _cmd_STRU(self, arg: str) -> list[Output]:
        if arg.strip().upper() != "F":
            raise BadArgument("only STRU F (file structure) is supported")
        return [Reply.one(200, "Structure set to F.")]

    def _cmd_ALLO(self, arg: str) -> list[Output]:
        self.alloc = A.parse_alloc(arg)
        return [Reply.one(200, "ALLO command successful.")]

    def _cmd_REST(self, arg: str) -> list[Output]:
        self.restart = A.parse_rest(arg, self.mode)
        return [Reply.one(350, "Restart Marker OK. Send STORE or RETR to initiate transfer.")]

    def _cmd_OPTS(self, arg: str) -> list[Output]:
        name, options = A.parse_opts(arg)
        if name == "RETR":
            par = A.parse_retr_opts(options)
            markers = A.parse_retr_markers(options)
            if par is not None:
                self.parallelism = par.starting
            if markers is not None:
                self.retr_markers = float(markers) if markers else None
            return [Reply.one(200, "OPTS Command Successful.")]
        if name == "UTF8" and options.upper() in ("ON", ""):
            return [Reply.one(200, "UTF8 mode on.")]
        return [Reply.one(501, f"OPTS {name} is not supported.")]

    def _cmd_TREV(self, arg: str) -> list[Output]:
        event, seconds = A.parse_trev(arg)
        if event == "RESTART":
            self.restart_interval = seconds
        else:
            self.perf_interval = seconds
        return [Reply.one(200, "Command Successful.")]

    def _cmd_SBUF(self, arg: str) -> list[Output]:
        size = A.parse_bufsize(arg)
        self.store_buffer = self.retr_buffer = size
        return [Reply.one(200, "SBUF Command Successful.")]

    def _cmd_DCAU(self, arg: str) -> list[Output]:
        self.protection, code, text = dataprot.apply_dcau(self.protection, arg, can_authenticate=self._can_dcau)
        return [Reply.one(code, text)]

    def _cmd_PROT(self, arg: str) -> list[Output]:
        self.protection, code, text = dataprot.apply_prot(self.protection, arg)
        return [Reply.one(code, text)]

    def _cmd_PBSZ(self, arg: str) -> list[Output]:
        self.protection, code, text = dataprot.apply_pbsz(self.protection, arg)
        return [Reply.one(code, text)]

    def _cmd_SITE(self, arg: str) -> list[Output]:
        sub, rest = A.parse_site(arg)
        if sub != "SYMLINKTO":
            self.symlink_from = None
        if sub == "HELP":
            return [
                Reply(
                    214,
                    ("The following SITE commands are recognized:", " ".join(self._site_commands()), "End."),
                )
            ]
        if sub in ("CHMOD", "UTIME", "SYMLINKFROM", "SYMLINKTO"):
            return self._site_namespace(sub, rest)
        if sub == "CLIENTINFO":
            self.client_info = rest[:512]
            return [Reply.one(200, "Command Successful.")]
        if sub in ("STORBUFSIZE", "RETRBUFSIZE", "BUFSIZE", "SBUF"):
            size = A.parse_bufsize(rest)
            if sub != "RETRBUFSIZE":
                self.store_buffer = size
            if sub != "STORBUFSIZE":
                self.retr_buffer = size
            return [Reply.one(200, "Site Command Successful.")]
        return [Reply.one(500, f"SITE {sub} is not supported; see SITE HELP.")]

    def _can(self, operation: str) -> bool:
        known = self.config.namespace
        return known is None or operation in known

    def _site_commands(self) -> list[str]:
        names = ["HELP", "CLIENTINFO", "STORBUFSIZE", "RETRBUFSIZE", "BUFSIZE"]
        if self._can("set_metadata"):
            names += ["CHMOD", "UTIME"]
        # SYMLINKFROM/SYMLINKTO are not listed: the Globus client library reads
        # "SYMLINK" in SITE HELP as the one-command form, which Globus servers lack too.
        return names

    def _site_namespace(self, sub: str, rest: str) -> list[Output]:
        if not self.writable:
            return [Reply.one(550, "Permission denied: this login is read-only.")]
        needs = "symlink" if sub.startswith("SYMLINK") else "set_metadata"
        if not self._can(needs):
            what = "symbolic links" if needs == "symlink" else "permissions or modification times"
            return [Reply.one(502, f"SITE {sub}: this storage cannot set {what}.")]
        if sub == "CHMOD":
            chmod = A.parse_chmod(rest)
            return [SetAttributes(self._path(chmod.path), mode=chmod.mode)]
        if sub == "UTIME":
            utime = A.parse_utime(rest)
            return [SetAttributes(self._path(utime.path), mtime_ns=utime.mtime_ns)]
        if sub == "SYMLINKFROM":
            return [StorageOp("SYMLINKFROM", self._path(rest))]
        target, self.symlink_from = self.symlink_from, None
        if target is None:
            return [Reply.one(503, "SITE SYMLINKTO must follow a successful SITE SYMLINKFROM.")]
        link = self._path(rest)
        # Stored relative to the link's directory: an absolute client path would
        # point outside the served root on the storage itself.
        return [MakeSymlink(link, posixpath.relpath(target, posixpath.dirname(link)))]

    # -- data channel ---------------------------------------------------------------------

    def _cmd_PASV(self, arg: str) -> list[Output]:
        return [OpenPassive("PASV")]

    def _cmd_EPSV(self, arg: str) -> list[Output]:
        if arg.strip().upper() == "ALL":
            return [Reply.one(200, "EPSV ALL accepted.")]
        if arg.strip() not in ("", "1", "2"):
            raise BadArgument("EPSV takes no argument, 1, 2 or ALL")
        return [OpenPassive("EPSV")]

    def _cmd_SPAS(self, arg: str) -> list[Output]:
        return [OpenPassive("SPAS")]

    def _check_active(self, addresses: tuple[HostPort, ...]) -> tuple[HostPort, ...]:
        # Bounce protection: data connections only to the client's own host.
        for hp in addresses:
            if hp.host != self.peer_host:
                raise BadArgument(f"data address {hp.host} is not the client's address {self.peer_host}")
        return addresses

    def _set_active(self, addresses: tuple[HostPort, ...]) -> list[Output]:
        # A new setup object: connections cached for the previous one are not reused.
        self.data = Active(self._check_active(addresses))
        self.passive_kind = None
        return [Reply.one(200, "PORT Command successful.")]

    def _cmd_PORT(self, arg: str) -> list[Output]:
        return self._set_active((parse_ftp_hostport(arg),))

    def _cmd_EPRT(self, arg: str) -> list[Output]:
        return self._set_active((parse_eprt(arg),))

    def _cmd_SPOR(self, arg: str) -> list[Output]:
        return self._set_active(parse_spor(arg))

    # -- transfers ---------------------------------------------------------------------------

    def _store(self, path: str, shift: int = 0, *, update: bool = False) -> list[Output]:
        data = self._need_data()
        action = Store(
            path=path,
            data=data,
            mode=self.mode,
            restart=self.restart,
            alloc=self.alloc,
            shift=shift,
            update=update,
            buffer_size=self.store_buffer,
            restart_interval=self.restart_interval,
            perf_interval=self.perf_interval,
        )
        return self._start_transfer(action)

    def _retrieve(self, path: str, window: tuple[int, int] | None = None) -> list[Output]:
        data = self._need_data()
        action = Retrieve(
            path=path,
            data=data,
            mode=self.mode,
            restart=self.restart,
            window=window,
            parallelism=self.parallelism if self.mode == "E" else 1,
            buffer_size=self.retr_buffer,
            perf_interval=self.perf_interval,
            perf_markers=self.retr_markers,
        )
        return self._start_transfer(action)

    def _cmd_STOR(self, arg: str) -> list[Output]:
        return self._store(self._path(arg))

    def _cmd_RETR(self, arg: str) -> list[Output]:
        return self._retrieve(self._path(arg))

    def _cmd_ESTO(self, arg: str) -> list[Output]:
        req = A.parse_esto(arg)
        return self._store(self._path(req.path), shift=req.offset, update=True)

    def _cmd_ERET(self, arg: str) -> list[Output]:
        req = A.parse_eret(arg)
        return self._retrieve(self._path(req.path), window=(req.offset, req.length))

    def _listing(self, verb: str, arg: str) -> list[Output]:
        # LIST options such as "-la" are accepted and ignored, as most servers do.
        words = [w for w in arg.split(" ") if w and not w.startswith("-")]
        path = resolve(self.cwd, " ".join(words))
        return self._start_transfer(Listing(verb, path, self._need_data(), self.mode))

    def _cmd_MLSD(self, arg: str) -> list[Output]:
        return self._listing("MLSD", arg)

    def _cmd_LIST(self, arg: str) -> list[Output]:
        return self._listing("LIST", arg)

    def _cmd_NLST(self, arg: str) -> list[Output]:
        return self._listing("NLST", arg)

    def _cmd_MLSR(self, arg: str) -> list[Output]:
        return self._listing("MLSR", arg)

    def _cmd_CKSM(self, arg: str) -> list[Output]:
        req = A.parse_cksm(arg)
        if req.algorithm not in self.config.checksums:
            raise BadArgument(f"checksum algorithm {req.algorithm} is not offered here")
        return [Checksum(req.algorithm, self._path(req.path), req.offset, req.length)]

    def _cmd_ABOR(self, arg: str) -> list[Output]:
        return [Reply.one(226, "Abort successful; no transfer was in progress.")]


def _handlers(table: dict[str, CommandSpec]) -> dict[str, Callable[[Session, str], list[Output]]]:
    """Each verb's handler, looked up once: a name in the table that names no method fails on import."""
    return {verb: getattr(Session, spec.handler) for verb, spec in table.items()}


_HANDLERS = _handlers(COMMANDS)
