"""``transfercore checksum URL``: the whole-object checksum of one object.

Uses the storage's own checksum where the driver has one, else reads the
object back in order.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..checksums import DEFAULT_ALGORITHM, canonical, checksum_reader
from ..errors import IsADirectory, UnknownChecksum
from ..registry import open_location
from .exitcodes import ExitCode


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("checksum", help="print the checksum of one object")
    parser.add_argument("url", metavar="URL", help="URL or local path of the object")
    parser.add_argument(
        "--algorithm",
        "-a",
        default=DEFAULT_ALGORITHM,
        metavar="ALG",
        help="MD5, ADLER32, CRC32C (default), SHA256, SHA1 or SHA512",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def compute(url: str, algorithm: str) -> tuple[str, str, str]:
    """``(canonical algorithm, hex digest, method)`` of the object at ``url``."""
    name = canonical(algorithm)
    endpoint = open_location(url)
    try:
        info = endpoint.driver.stat(endpoint.path)
        if info.is_dir:
            raise IsADirectory(f"{url} is a directory", hint="give the path of a file")
        value = endpoint.driver.checksum(endpoint.path, name)
        if value is not None:
            return name, value.lower(), "storage"
        ordered = endpoint.driver.capabilities().ordered_writes
        with endpoint.driver.open_read(endpoint.path) as reader:
            return name, checksum_reader(reader, name, parallel=1 if ordered else 2), "read-back"
    finally:
        endpoint.driver.close()


def run(args: argparse.Namespace) -> int:
    try:
        name, value, method = compute(args.url, args.algorithm)
    except UnknownChecksum as exc:
        print(f"transfercore: error: {exc}", file=sys.stderr)
        return int(ExitCode.USAGE)
    if args.json:
        print(json.dumps({"algorithm": name, "checksum": value, "method": method, "url": args.url}))
    else:
        print(f"{name.upper()} {value}  {args.url}")
    return 0
