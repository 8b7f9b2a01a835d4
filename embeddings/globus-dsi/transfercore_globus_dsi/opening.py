"""The session's driver, opened from the class the launcher resolved.

The registry finds drivers through stevedore entry points, which reads the
metadata of every installed distribution (``importlib.metadata``): about
50 ms of CPU measured here, on top of importing stevedore.  The server
starts a new process, and Python, for every client connection, so that
search would run once per session.  Instead whoever starts the server
(:mod:`.launch`: ``transfercore globus-server``, ``--site-config``, the
tests and the benchmark) asks the registry once and writes the answer into
the DSI options (``entry_point=NAME=module:attr``); a session imports that
module and nothing of the registry.

The registry stays the only way drivers are found: an ``entry_point`` it
did not produce is still checked (a :class:`~transfercore.contract.Driver`
subclass), and one that no longer imports (the driver was reinstalled
elsewhere) falls back to the registry, with a warning in the log.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from transfercore.contract import Driver
from transfercore.errors import DriverLoadError, TransferCoreError
from transfercore.location import Location
from transfercore.options import validate_options

log = logging.getLogger("transfercore.globus_dsi")


def class_ref(cls: type[Any]) -> str:
    """``module:attr`` of a class."""
    return f"{cls.__module__}:{cls.__qualname__}"


def resolve(name: str) -> str:
    """``NAME=module:attr`` of the driver registered as ``name``, found through the registry."""
    from transfercore.registry import load_driver_class

    return f"{name}={class_ref(load_driver_class(name))}"


def load_class(ref: str, name: str) -> type[Driver]:
    """Import the driver class ``ref`` (``module:attr``) for the driver ``name``."""
    module, _, attr = ref.partition(":")
    try:
        obj: Any = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except Exception as exc:  # noqa: BLE001 - any import failure is the driver's
        raise DriverLoadError(name, None, exc) from exc
    if not (isinstance(obj, type) and issubclass(obj, Driver)):
        raise DriverLoadError(name, None, TypeError(f"{ref} is not a transfercore.contract.Driver subclass"))
    return obj


def driver_class(location: Location, ref: str | None) -> type[Driver]:
    """The class of ``location``'s driver: ``ref`` when it imports, else the registry's."""
    if ref is not None:
        try:
            return load_class(ref, location.driver)
        except DriverLoadError as exc:
            log.warning("entry_point=%s=%s: %s; asking the registry", location.driver, ref, exc.cause)
    from transfercore.registry import load_driver_class

    return load_driver_class(location.driver)


def open_driver(location: Location, ref: str | None) -> Driver:
    """Construct ``location``'s driver with its options, as the registry's ``open_location`` does."""
    cls = driver_class(location, ref)
    settings = validate_options(location.driver, cls.options, location.option_map)
    try:
        return cls(authority=location.authority, options=settings)
    except TransferCoreError:
        raise
    except Exception as exc:
        raise DriverLoadError(location.driver, None, exc) from exc


__all__ = ["class_ref", "driver_class", "load_class", "open_driver", "resolve"]
