"""Find drivers through stevedore entry points in namespace ``transfercore.drivers``.

The core never imports a driver by name: a third-party distribution that
registers an entry point in the namespace is found exactly like the shipped
ones.  Import failures are turned into the project's errors, and a listing
shows a broken driver as broken instead of failing.
"""

from __future__ import annotations

import importlib.metadata
from typing import Any, ClassVar

import attrs
import stevedore
import stevedore.exception

from .contract import Driver
from .errors import DriverLoadError, DriverNotFound
from .location import Location, parse_location
from .options import validate_options

NAMESPACE = "transfercore.drivers"


@attrs.frozen
class DriverInfo:
    """One installed driver, as ``transfercore drivers`` shows it."""

    name: str
    distribution: str | None
    version: str | None
    target: str
    capabilities: dict[str, Any] | None = None
    details: dict[str, Any] = attrs.field(factory=dict)
    options: dict[str, str] = attrs.field(factory=dict)
    error: str | None = None

    @property
    def broken(self) -> bool:
        return self.error is not None

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self) | {"broken": self.broken}


@attrs.frozen
class Endpoint:
    """A driver instance and the path it was asked for."""

    driver: Driver
    path: str
    location: Location


class _Found:
    """The registry's own memory of the entry points stevedore found (stevedore
    keeps them per class), so that :func:`refresh` never touches stevedore's."""

    ENTRY_POINT_CACHE: ClassVar[dict[str, list[Any]]] = {}


class _Listing(_Found, stevedore.NamedExtensionManager[type[Driver]]):
    """Lists the entry points of the namespace without importing any driver."""


class _Loader(_Found, stevedore.DriverManager[type[Driver]]):
    """Imports one driver by name."""


def _entry_points() -> list[Any]:
    seen: dict[str, Any] = {}
    for ep in _Listing(NAMESPACE, names=[]).list_entry_points():
        seen.setdefault(ep.name, ep)
    return sorted(seen.values(), key=lambda ep: ep.name)


def _dist(ep: Any) -> tuple[str | None, str | None]:
    """The distribution that installs the module of ``ep``, and its version."""
    module = ep.value.split(":", 1)[0].split(".", 1)[0]
    names = importlib.metadata.packages_distributions().get(module)
    if not names:
        return None, None
    try:
        return names[0], importlib.metadata.version(names[0])
    except importlib.metadata.PackageNotFoundError:
        return names[0], None


def _distribution_of(name: str) -> str | None:
    for ep in _entry_points():
        if ep.name == name:
            return _dist(ep)[0]
    return None


def refresh() -> None:
    """Forget the entry points found so far, so that a driver installed while
    the process runs is found by the next lookup."""
    _Found.ENTRY_POINT_CACHE.clear()


def installed_names() -> list[str]:
    """Names of the registered drivers, loadable or not."""
    return [ep.name for ep in _entry_points()]


def load_driver_class(name: str) -> type[Driver]:
    """Load the driver class registered as ``name``."""
    failures: list[tuple[Any, BaseException]] = []

    def on_failure(_manager: Any, entrypoint: Any, exc: BaseException) -> None:
        failures.append((entrypoint, exc))

    try:
        manager = _Loader(
            namespace=NAMESPACE,
            name=name,
            invoke_on_load=False,
            on_load_failure_callback=on_failure,
        )
    except stevedore.exception.NoMatches:
        if failures:
            raise DriverLoadError(name, _distribution_of(name), failures[0][1]) from failures[0][1]
        raise DriverNotFound(name, installed_names()) from None
    except stevedore.exception.MultipleMatches:
        raise DriverLoadError(
            name, None, RuntimeError("several distributions register this name; uninstall all but one")
        ) from None
    cls = manager.driver
    if not (isinstance(cls, type) and issubclass(cls, Driver)):
        raise DriverLoadError(name, _distribution_of(name), TypeError(f"{cls!r} is not a transfercore.contract.Driver subclass"))
    return cls


def open_location(url: str | Location) -> Endpoint:
    """Parse ``url``, load its driver, validate its options and construct it."""
    location = parse_location(url) if isinstance(url, str) else url
    cls = load_driver_class(location.driver)
    settings = validate_options(location.driver, cls.options, location.option_map)
    try:
        driver = cls(authority=location.authority, options=settings)
    except (DriverLoadError, DriverNotFound):
        raise
    except Exception as exc:
        from .errors import TransferCoreError

        if isinstance(exc, TransferCoreError):
            raise
        raise DriverLoadError(location.driver, None, exc) from exc
    return Endpoint(driver=driver, path=location.path, location=location)


def list_drivers() -> list[DriverInfo]:
    """Every registered driver, with capabilities, or with its error when broken."""
    out: list[DriverInfo] = []
    for ep in _entry_points():
        dist, version = _dist(ep)
        try:
            cls = load_driver_class(ep.name)
            driver = cls(authority="", options=validate_options(ep.name, cls.options, {}))
            caps = driver.capabilities().to_dict() | {"namespace": sorted(driver.namespace())}
            details = driver.describe()
            options = {k: spec.help for k, spec in cls.options.items()}
        except Exception as exc:  # a broken driver must not break the listing
            cause = exc.cause if isinstance(exc, DriverLoadError) else exc
            out.append(
                DriverInfo(ep.name, dist, version, ep.value, error=f"{type(cause).__name__}: {cause}")
            )
            continue
        out.append(DriverInfo(ep.name, dist, version, ep.value, caps, details, options))
    return out
