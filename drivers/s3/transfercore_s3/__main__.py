"""List, or abort, the unfinished multipart uploads under an S3 location.

    python -m transfercore_s3 uploads 's3://BUCKET/PREFIX?endpoint=...' [--abort]

An interrupted copy leaves its upload in the store so that the same command
can resume it; one that is never resumed costs storage until it is aborted.
"""

from __future__ import annotations

import argparse
import sys

from transfercore.errors import TransferCoreError
from transfercore.registry import open_location

from .driver import S3Driver
from .layout import LAYOUT_PART


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m transfercore_s3", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    uploads = commands.add_parser("uploads", help="list the unfinished uploads under a location")
    uploads.add_argument("location", help="s3://BUCKET/PREFIX?endpoint=...")
    uploads.add_argument("--abort", action="store_true", help="abort every one listed (their parts are deleted)")
    args = parser.parse_args(argv)
    try:
        endpoint = open_location(args.location)
        driver = endpoint.driver
        if not isinstance(driver, S3Driver):
            parser.error(f"{args.location} is not an s3:// location")
        found = driver.unfinished(endpoint.path)
        for upload, parts in found:
            data = [p for p in parts if p.number != LAYOUT_PART]
            print(f"{upload.initiated:%Y-%m-%d %H:%M:%S}  {len(data):5} parts  {sum(p.size for p in data):15} bytes  "
                  f"s3://{driver.store.bucket}/{upload.key}")
            if args.abort:
                driver.store.abort_upload(upload.key, upload.upload_id)
        if args.abort:
            print(f"aborted {len(found)} unfinished upload{'s' if len(found) != 1 else ''}")
    except TransferCoreError as exc:
        print(f"python -m transfercore_s3: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
