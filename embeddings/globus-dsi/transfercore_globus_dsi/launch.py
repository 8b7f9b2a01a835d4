"""How to start ``globus-gridftp-server`` with the transfercore DSI: argv, environment, site lines.

Shared by ``transfercore globus-server``, the tests and the benchmark.  No
server is started here; :func:`server_launch` byte-compiles what sessions
import (:func:`precompile`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence

import attrs

from transfercore.errors import TransferCoreError

from . import DSI_NAME, MODULE_FILE, build_info, module_dir, module_path
from .config import parse_config


class ServerNotFound(TransferCoreError):
    """``globus-gridftp-server`` or the compiled module is missing."""


@attrs.frozen
class Launch:
    argv: tuple[str, ...]
    env: Mapping[str, str]
    log: str
    #: modules a session imports first (the driver's): a warm process imports them ahead
    imports: tuple[str, ...] = ()


def dsi_options(url: str, log: str | None = None, extra: Sequence[str] = (), *, resolve: bool = True) -> str:
    """The option string after ``transfercore:``; checked by the same parser the DSI uses.

    With ``resolve`` (and no ``entry_point=`` in ``extra``) the URL's driver is
    found through the registry here, once, and named in ``entry_point=``:
    sessions then import its module directly instead of each searching the
    installed distributions (:mod:`.opening`).
    """
    given = parse_config(" ".join([url, *extra]))
    parts = [url, *([f"log={log}"] if log else []), *extra]
    if resolve and given.entry_point is None:
        parts.append(f"entry_point={resolve_entry_point(given.location.driver)}")
    text = " ".join(parts)
    parse_config(text)
    return text


def resolve_entry_point(name: str) -> str:
    """``NAME=module:attr`` of driver ``name``, as the registry resolves it."""
    from .opening import resolve

    return resolve(name)


def check_url(url: str) -> None:
    """Fail before the server starts when URL's driver is unknown or its options are bad
    (the sessions would otherwise each refuse the login)."""
    from transfercore.options import validate_options
    from transfercore.registry import load_driver_class

    location = parse_config(url).location
    cls = load_driver_class(location.driver)
    validate_options(location.driver, cls.options, location.option_map)


def default_log() -> str:
    return f"/tmp/transfercore-globus-dsi-{os.getuid()}.log"


def find_server(name: str = "globus-gridftp-server") -> str:
    found = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/local/sbin/{name}") if os.access(p, os.X_OK)), None
    )
    if found is None:
        raise ServerNotFound(
            f"{name} is not on PATH",
            hint="install it (Debian: apt-get install globus-gridftp-server-progs)",
        )
    return found


def check_module() -> str:
    path = module_path()
    if not os.path.exists(path):
        raise ServerNotFound(
            f"the DSI module {MODULE_FILE} is missing from {module_dir()}",
            hint="reinstall transfercore-globus-dsi (pip install --force-reinstall transfercore-globus-dsi)",
        )
    return path


def precompile(url: str, environ: Mapping[str, str] | None = None) -> bool:
    """Byte-compile transfercore, the DSI and URL's driver with the embedded interpreter.

    The server starts Python in every session process; a module without
    cached bytecode is compiled from source there, each time (an editable
    install, ``PYTHONDONTWRITEBYTECODE`` in the environment, sessions whose
    account cannot write ``__pycache__``).  Measured: that made the imports of
    a session 0.3-0.9 s instead of about 0.1 s.  Once compiled this only
    checks timestamps.  Returns whether it succeeded (failing costs speed only).
    """
    import transfercore
    from transfercore.registry import load_driver_class

    from . import __file__ as dsi_init

    env = dict(os.environ if environ is None else environ)
    exe = env.get("TRANSFERCORE_DSI_PYTHON") or str(build_info().get("executable") or sys.executable)
    dirs = {os.path.dirname(os.path.abspath(transfercore.__file__)), os.path.dirname(os.path.abspath(dsi_init))}
    try:
        driver_module = sys.modules[load_driver_class(parse_config(url).location.driver).__module__]
        if driver_module.__file__:
            dirs.add(os.path.dirname(os.path.abspath(driver_module.__file__)))
    except (TransferCoreError, KeyError):
        pass
    try:
        proc = subprocess.run(
            [exe, "-m", "compileall", "-q", "-j", "0", *sorted(dirs)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, timeout=300, check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def server_launch(
    url: str,
    server_args: Sequence[str] = (),
    *,
    log: str | None = None,
    dsi_extra: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
    server: str | None = None,
) -> Launch:
    """argv and environment for the real server with the DSI loaded and ``url`` served."""
    check_module()
    check_url(url)
    precompile(url, environ)
    log = log or default_log()
    env = dict(os.environ if environ is None else environ)
    libpath = env.get("LD_LIBRARY_PATH", "")
    env["LD_LIBRARY_PATH"] = module_dir() + (os.pathsep + libpath if libpath else "")
    env["TRANSFERCORE_DSI_LOG"] = log
    options = dsi_options(url, log, dsi_extra)
    argv = [server or find_server(), *server_args, "-dsi", f"{DSI_NAME}:{options}"]
    entry = parse_config(options).entry_point  # module:attr of the driver's class
    imports = (entry.partition(":")[0],) if entry else ()
    return Launch(tuple(argv), env, log, imports)


def site_config(url: str, log: str | None = None) -> str:
    """A gridftp.conf fragment that loads the DSI serving ``url``: valid config-file lines.

    ``$NAME value`` lines set the server's environment (its module loader reads
    ``LD_LIBRARY_PATH`` when it loads the module); a value holding spaces must be
    in double quotes.
    """
    info = build_info()
    log = log or "/var/log/gridftp/transfercore-dsi.log"
    options = dsi_options(url, log)
    if '"' in options:
        raise TransferCoreError(f"the DSI options {options!r} contain a double quote, which gridftp.conf cannot hold")
    return "\n".join(
        [
            "# transfercore DSI (transfercore globus-server --site-config)",
            f"# embedded Python: {info['executable']} (Python {info['version']}, {info['libpython']} from",
            f"#   {info['libdir']}); transfercore and the drivers come from its environment {info['prefix']}.",
            "#   The accounts sessions run as must be able to read it, and to write the log.",
            f"$LD_LIBRARY_PATH {module_dir()}",
            f'load_dsi_module "{DSI_NAME}:{options}"',
            "",
        ]
    )
