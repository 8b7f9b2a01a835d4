"""A command's configuration file: TOML whose keys are the command's long options.

``--anonymous-write`` is ``anonymous_write = true``, ``--port 2811`` is
``port = 2811``.  Options given on the command line override the file; what
neither gives takes the option's default.  The option table is read from the
command's own argument parser, so a new option is a new key without a second
list to keep in step.

Errors name the file, the line and the key, and are :class:`ConfigError`
(an :class:`~transfercore.errors.OptionError`: exit code 2).
"""

from __future__ import annotations

import argparse
import difflib
import re
import tomllib
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from ..errors import OptionError, TransferCoreError

#: Options that are actions or the file itself, never settings a file may hold.
NOT_KEYS = frozenset({"config", "check_config", "add_user", "func", "command", "help"})
#: Where :func:`overridable` keeps the real defaults on the parsed arguments.
DEFAULTS_ATTR = "_option_defaults"
TABLE_ATTR = "_option_table"


class ConfigError(OptionError):
    """A configuration file that cannot be used: unreadable, not TOML, or a bad key or value."""

    def __init__(self, message: str, *, path: str, line: int | None = None, key: str | None = None,
                 hint: str = "") -> None:
        where = f"{path}:{line}" if line else path
        what = f"key {key!r}: " if key else ""
        super().__init__(f"{where}: {what}{message}", hint=hint)
        self.path = path
        self.line = line
        self.key = key


@attrs.frozen
class Option:
    key: str
    #: ``bool``, ``int``, ``float`` or ``str``
    kind: type
    default: Any
    flag: str


def option_table(parser: argparse.ArgumentParser) -> dict[str, Option]:
    """Every setting ``parser`` takes, by key."""
    table: dict[str, Option] = {}
    for action in parser._actions:  # noqa: SLF001 - argparse has no public list of its options
        if action.dest in NOT_KEYS or not action.option_strings:
            continue
        if isinstance(action, argparse._StoreTrueAction):  # noqa: SLF001
            kind: type = bool
        elif isinstance(action, argparse._AppendAction):  # noqa: SLF001
            kind = list
        elif action.type in (int, float):
            kind = action.type
        else:
            kind = str
        long = [s for s in action.option_strings if s.startswith("--")]
        table[action.dest] = Option(action.dest, kind, action.default, (long or action.option_strings)[0])
    return table


def overridable(parser: argparse.ArgumentParser) -> None:
    """Make every setting of ``parser`` ``None`` unless given on the command line.

    The real defaults are kept on the parsed arguments; :func:`merge` fills in
    what the command line left out, from a file first.
    """
    table = option_table(parser)
    defaults = {key: opt.default for key, opt in table.items()}
    parser.set_defaults(**{key: None for key in table}, **{DEFAULTS_ATTR: defaults, TABLE_ATTR: table})


def options(args: argparse.Namespace) -> dict[str, Option]:
    """The option table of the command that parsed ``args`` (see :func:`overridable`)."""
    table: dict[str, Option] = getattr(args, TABLE_ATTR, {})
    return table


def given(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given on the command line (before :func:`merge`)."""
    defaults: Mapping[str, Any] = getattr(args, DEFAULTS_ATTR, {})
    return {key: getattr(args, key) for key in defaults if getattr(args, key, None) is not None}


def merge(args: argparse.Namespace, command_line: Mapping[str, Any], file: Mapping[str, Any]) -> argparse.Namespace:
    """``args`` with every setting from the command line, else the file, else its default."""
    defaults: Mapping[str, Any] = getattr(args, DEFAULTS_ATTR, {})
    merged = argparse.Namespace(**vars(args))
    for key, default in defaults.items():
        if key in command_line:
            value = command_line[key]
        elif key in file:
            value = file[key]
        else:
            value = default
        setattr(merged, key, value)
    return merged


@attrs.frozen
class ConfigFile:
    path: str
    values: Mapping[str, Any]
    #: the line each key is set on
    lines: Mapping[str, int]

    def line(self, key: str) -> int | None:
        return self.lines.get(key)

    def error(self, key: str, message: str, hint: str = "") -> ConfigError:
        return ConfigError(message, path=self.path, line=self.line(key), key=key, hint=hint)


_TOML_LINE = re.compile(r"\(at line (\d+), column \d+\)")


def _key_lines(text: str) -> dict[str, int]:
    lines: dict[str, int] = {}
    pattern = re.compile(r"""^\s*(?:"([^"]+)"|'([^']+)'|([A-Za-z0-9_.-]+))\s*=""")
    for number, raw in enumerate(text.splitlines(), 1):
        m = pattern.match(raw)
        if m:
            key = next(g for g in m.groups() if g is not None)
            lines.setdefault(key, number)
        elif raw.strip().startswith("["):
            name = raw.strip().strip("[]").strip()
            lines.setdefault(name, number)
    return lines


def _type_name(kind: type) -> str:
    return {bool: "true or false", int: "a whole number", float: "a number", str: "a string",
            list: "a list of strings"}[kind]


def load(
    path: str,
    table: Mapping[str, Option],
    checks: Mapping[str, Callable[[Any], None]] | None = None,
) -> ConfigFile:
    """Read and check ``path`` against ``table``; ``checks`` validate single values (raising ``ValueError``)."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise ConfigError(f"cannot read the configuration file: {exc.strerror or exc}", path=path,
                          hint="check the path given to --config") from None
    try:
        text = raw.decode("utf-8")
        data = tomllib.loads(text)
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text: {exc}", path=path) from None
    except tomllib.TOMLDecodeError as exc:
        m = _TOML_LINE.search(str(exc))
        message = _TOML_LINE.sub("", str(exc)).strip()
        raise ConfigError(f"not valid TOML: {message}", path=path, line=int(m.group(1)) if m else None,
                          hint="see https://toml.io; strings need quotes, e.g. root = \"/srv/data\"") from None
    file = ConfigFile(path, {}, _key_lines(text))
    values: dict[str, Any] = {}
    for key, value in data.items():
        opt = table.get(key)
        if isinstance(value, dict) and opt is None:
            raise file.error(key, "is a table; settings are top-level keys",
                             hint=f"write them above any [section] line, without [{key}]")
        if opt is None:
            candidates = difflib.get_close_matches(key.replace("-", "_"), list(table), n=1)
            hint = f"did you mean {candidates[0]!r}?" if candidates else "the keys are the long options of the command, with _ for -"
            raise file.error(key, "unknown setting", hint=hint)
        if isinstance(value, dict):
            raise file.error(key, f"is a table; expected {_type_name(opt.kind)}")
        ok = (
            isinstance(value, bool) if opt.kind is bool
            else isinstance(value, int) and not isinstance(value, bool) if opt.kind is int
            else isinstance(value, (int, float)) and not isinstance(value, bool) if opt.kind is float
            else isinstance(value, list) and all(isinstance(v, str) for v in value) if opt.kind is list
            else isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))
        )
        if not ok:
            raise file.error(key, f"{value!r} is not {_type_name(opt.kind)}")
        if opt.kind is float:
            value = float(value)
        elif opt.kind is str:
            value = str(value)
        check = (checks or {}).get(key)
        if check is not None:
            try:
                check(value)
            except (ValueError, TransferCoreError) as exc:
                raise file.error(key, str(exc)) from None
        values[key] = value
    return attrs.evolve(file, values=values)


__all__ = ["ConfigError", "ConfigFile", "Option", "given", "load", "merge", "option_table", "options", "overridable"]
