"""Which event loop the servers (``serve``, ``serve-http``) run on.

uvloop, where it is installed (it is a dependency on Linux and macOS), runs
a server's per-file work on a loop written in C: a session of many small
files makes about ten loop passes, a dozen callbacks and several futures per
file, and the pure-Python loop's share of that was a large part of the
interpreter's time (docs/gridftp-server.md, "Performance").  asyncio's own
loop remains the fallback and can be asked for; both run the same code.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import OptionError

if TYPE_CHECKING:
    # imported where used: the command line's other subcommands do not load asyncio
    import asyncio

T = TypeVar("T")

#: ``auto``: uvloop when installed, else asyncio's loop.
CHOICES = ("auto", "uvloop", "asyncio")


def loop_factory(choice: str = "auto") -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The factory of the loop ``choice`` names (``None``: asyncio's default)."""
    if choice not in CHOICES:
        raise OptionError(f"--event-loop {choice}: give one of {', '.join(CHOICES)}")
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise OptionError(
                "--event-loop uvloop: uvloop is not installed",
                hint="pip install uvloop, or use --event-loop asyncio",
            ) from None
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run(main: Coroutine[Any, Any, T], choice: str = "auto") -> T:
    """Run ``main`` to its end on the loop ``choice`` names, as :func:`asyncio.run` does."""
    import asyncio

    with asyncio.Runner(loop_factory=loop_factory(choice)) as runner:
        return runner.run(main)


def loop_name(loop: asyncio.AbstractEventLoop | None = None) -> str:
    """``uvloop`` or ``asyncio``: what runs ``loop`` (by default the running one)."""
    import asyncio

    loop = loop or asyncio.get_running_loop()
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
