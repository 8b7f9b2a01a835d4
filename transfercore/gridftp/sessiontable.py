"""The GridFTP session's tables: its states and the changes between them, and its verbs.

A session's state changes only through :data:`TRANSITIONS`, ``(state,
change) -> state``; a change the table does not hold is a bug in the
session.  :data:`COMMANDS` says how the session treats each verb it knows
(login needed, writes, keeps a pending REST) and which of its methods
answers it; the handlers themselves are :class:`.session.Session`'s.
"""

from __future__ import annotations

import enum

import attrs


class State(enum.Enum):
    NEED_USER = "need-user"
    NEED_PASS = "need-pass"
    READY = "ready"
    TRANSFER = "transfer"
    CLOSED = "closed"


class Change(enum.Enum):
    """What moves a session from one :class:`State` to another."""

    USER_GIVEN = "user-given"
    LOGGED_IN = "logged-in"
    LOGIN_REFUSED = "login-refused"
    TRANSFER_STARTED = "transfer-started"
    TRANSFER_ENDED = "transfer-ended"
    #: QUIT, too many commands, too many refused logins
    CLOSED = "closed"


_LOGGING_IN = (State.NEED_USER, State.NEED_PASS)
_OPEN = (State.NEED_USER, State.NEED_PASS, State.READY, State.TRANSFER)

#: Every state change a session may make; anything else is a bug in the session.
TRANSITIONS: dict[tuple[State, Change], State] = {
    **{(s, Change.USER_GIVEN): State.NEED_PASS for s in _LOGGING_IN},
    **{(s, Change.LOGGED_IN): State.READY for s in _LOGGING_IN},
    **{(s, Change.LOGIN_REFUSED): State.NEED_USER for s in _LOGGING_IN},
    (State.READY, Change.TRANSFER_STARTED): State.TRANSFER,
    # a transfer's end after QUIT (or a refused start) leaves the state as it is
    (State.TRANSFER, Change.TRANSFER_ENDED): State.READY,
    (State.READY, Change.TRANSFER_ENDED): State.READY,
    (State.CLOSED, Change.TRANSFER_ENDED): State.CLOSED,
    **{(s, Change.CLOSED): State.CLOSED for s in _OPEN},
}



@attrs.frozen
class CommandSpec:
    """How the session treats one verb."""

    #: The name of the :class:`~.session.Session` method that answers the verb.
    handler: str
    #: Refused with 530 before login.
    login: bool = True
    #: Refused with 550 on a read-only login.
    writes: bool = False
    #: May come between REST and the transfer without cancelling the REST.
    keeps_rest: bool = False


def _table() -> dict[str, CommandSpec]:
    free = {"login": False}
    setting = {"keeps_rest": True}
    write = {"writes": True}
    transfer = {"keeps_rest": True}
    entries: dict[str, tuple[str, dict[str, bool]]] = {
        # login and information
        "USER": ("_cmd_USER", free),
        "PASS": ("_cmd_PASS", free),
        "QUIT": ("_cmd_QUIT", free),
        "FEAT": ("_cmd_FEAT", free),
        "SYST": ("_cmd_SYST", free),
        "HELP": ("_cmd_HELP", free),
        "NOOP": ("_cmd_NOOP", {"login": False, "keeps_rest": True}),
        "OPTS": ("_cmd_OPTS", {"login": False, "keeps_rest": True}),
        "STAT": ("_cmd_STAT", setting),
        "PWD": ("_cmd_PWD", {}),
        "XPWD": ("_cmd_PWD", {}),
        "CWD": ("_cmd_CWD", {}),
        "XCWD": ("_cmd_CWD", {}),
        "CDUP": ("_cmd_CDUP", {}),
        "SIZE": ("_cmd_SIZE", {}),
        "MDTM": ("_cmd_MDTM", {}),
        "MLST": ("_cmd_MLST", {}),
        # namespace changes
        "MKD": ("_cmd_MKD", write),
        "XMKD": ("_cmd_MKD", write),
        "RMD": ("_cmd_RMD", write),
        "XRMD": ("_cmd_RMD", write),
        "DELE": ("_cmd_DELE", write),
        "RNFR": ("_cmd_RNFR", write),
        "RNTO": ("_cmd_RNTO", write),
        # transfer settings
        "TYPE": ("_cmd_TYPE", setting),
        "MODE": ("_cmd_MODE", setting),
        "STRU": ("_cmd_STRU", {}),
        "ALLO": ("_cmd_ALLO", setting),
        "REST": ("_cmd_REST", setting),
        "TREV": ("_cmd_TREV", setting),
        "SBUF": ("_cmd_SBUF", setting),
        "DCAU": ("_cmd_DCAU", setting),
        "PBSZ": ("_cmd_PBSZ", setting),
        "PROT": ("_cmd_PROT", setting),
        "SITE": ("_cmd_SITE", setting),
        # data channel
        "PASV": ("_cmd_PASV", setting),
        "EPSV": ("_cmd_EPSV", setting),
        "SPAS": ("_cmd_SPAS", setting),
        "PORT": ("_cmd_PORT", setting),
        "EPRT": ("_cmd_EPRT", setting),
        "SPOR": ("_cmd_SPOR", setting),
        # transfers
        "STOR": ("_cmd_STOR", {"writes": True, "keeps_rest": True}),
        "ESTO": ("_cmd_ESTO", {"writes": True, "keeps_rest": True}),
        "RETR": ("_cmd_RETR", transfer),
        "ERET": ("_cmd_ERET", transfer),
        "MLSD": ("_cmd_MLSD", {}),
        "MLSR": ("_cmd_MLSR", {}),
        "LIST": ("_cmd_LIST", {}),
        "NLST": ("_cmd_NLST", {}),
        "CKSM": ("_cmd_CKSM", {}),
        "ABOR": ("_cmd_ABOR", {}),
    }
    return {verb: CommandSpec(handler, **flags) for verb, (handler, flags) in entries.items()}


#: Every verb the session knows, and how it is treated.
COMMANDS: dict[str, CommandSpec] = _table()
