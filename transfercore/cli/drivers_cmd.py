"""``transfercore drivers``: what is installed and what each driver promises."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..registry import DriverInfo, list_drivers


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "drivers", help="list installed storage drivers and their capabilities"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.set_defaults(func=run)


def _text(info: DriverInfo) -> list[str]:
    origin = f"{info.distribution or '?'} {info.version or ''}".strip()
    if info.broken:
        return [f"{info.name}  [BROKEN]  ({origin})", f"    error: {info.error}"]
    lines = [f"{info.name}  ({origin})"]
    caps = info.capabilities or {}
    lines.append(
        "    restart={restart} ordered_writes={ordered_writes} max_writers={max_writers} "
        "atomic_publish={atomic_publish}".format(**caps)
    )
    lines.append(
        f"    block size: preferred {caps['preferred_block_size']}, minimum {caps['min_block_size']}; "
        f"storage checksums: {', '.join(caps['checksums']) or 'none'}"
    )
    for key, value in info.details.items():
        lines.append(f"    {key}: {value}")
    if info.options:
        lines.append(f"    options: {', '.join(sorted(info.options))}")
    return lines


def run(args: argparse.Namespace) -> int:
    infos = list_drivers()
    if args.json:
        print(json.dumps([i.to_dict() for i in infos], indent=2, sort_keys=True))
        return 0
    if not infos:
        print("no drivers installed; install one, e.g. 'pip install transfercore-posix'")
        return 0
    for info in infos:
        print("\n".join(_text(info)))
    return 0
