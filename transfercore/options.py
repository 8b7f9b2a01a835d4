"""Driver options given as URL query parameters, validated by name."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs

from .errors import OptionError, SizeSyntaxError
from .sizes import parse_size


@attrs.frozen
class OptionSpec:
    """One option a driver accepts: how to parse it and what it means."""

    parse: Callable[[str], Any]
    help: str = ""
    default: Any = None


def size_option(help: str, default: int | None = None, minimum: int = 0) -> OptionSpec:
    return OptionSpec(lambda text: parse_size(text, minimum=minimum), help, default)


def int_option(help: str, default: int | None = None, minimum: int = 0) -> OptionSpec:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise OptionError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise OptionError(f"{value} is below the minimum of {minimum}")
        return value

    return OptionSpec(parse, help, default)


def float_option(help: str, default: float | None = None, minimum: float = 0.0) -> OptionSpec:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise OptionError(f"{text!r} is not a number") from None
        if not value >= minimum:
            raise OptionError(f"{value} is below the minimum of {minimum}")
        return value

    return OptionSpec(parse, help, default)


def bool_option(help: str, default: bool = False) -> OptionSpec:
    def parse(text: str) -> bool:
        lowered = text.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise OptionError(f"{text!r} is not a boolean; use true or false")

    return OptionSpec(parse, help, default)


def choice_option(help: str, choices: tuple[str, ...], default: str | None = None) -> OptionSpec:
    def parse(text: str) -> str:
        if text not in choices:
            raise OptionError(f"{text!r} is not one of {', '.join(choices)}")
        return text

    return OptionSpec(parse, help, default)


def str_option(help: str, default: str | None = None) -> OptionSpec:
    return OptionSpec(str, help, default)


def with_defaults(specs: Mapping[str, OptionSpec], given: Mapping[str, Any]) -> dict[str, Any]:
    """``given`` with every option it leaves out at its declared default."""
    return {name: spec.default for name, spec in specs.items()} | dict(given)


def validate_options(
    driver: str, specs: Mapping[str, OptionSpec], given: Mapping[str, str]
) -> dict[str, Any]:
    """Parse ``given`` against ``specs``; unknown names and bad values raise
    :class:`OptionError` naming the option and the accepted ones."""
    unknown = sorted(set(given) - set(specs))
    if unknown:
        known = ", ".join(sorted(specs)) or "none"
        raise OptionError(
            f"driver {driver!r} has no option {', '.join(repr(u) for u in unknown)} (its options: {known})"
        )
    out = with_defaults(specs, {})
    for name, text in given.items():
        try:
            out[name] = specs[name].parse(text)
        except (OptionError, SizeSyntaxError, ValueError) as exc:
            message = exc.args[0] if exc.args else str(exc)
            raise OptionError(f"driver {driver!r} option {name}={text!r}: {message}") from None
    return out
