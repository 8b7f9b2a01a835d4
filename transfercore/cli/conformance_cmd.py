"""``transfercore conformance URL``: check a driver against the restart-marker contract."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..errors import OptionError, TransferCoreError
from .exitcodes import ExitCode


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "conformance",
        help="check an installed driver against the restart-marker contract",
        description=(
            "Run every contract clause against a driver, writing test objects under a scratch "
            "location (a directory URL that exists and may be written). Each clause passes, fails "
            "with its evidence, does not apply because of a declared capability, or cannot run on "
            "this machine (NOT RUN, saying what to install). Exit status 4 when any clause fails, "
            "5 when none fails but some could not run, 2 for a scratch location that cannot be used."
        ),
    )
    parser.add_argument(
        "url", nargs="?", help="scratch location, e.g. posix:///tmp/scratch or mock://store/scratch"
    )
    parser.add_argument(
        "--clause", action="append", metavar="NAME", help="run only this clause (repeatable); see --list"
    )
    parser.add_argument("--list", action="store_true", help="list the clauses and exit")
    parser.add_argument(
        "--no-power-loss",
        action="store_true",
        help="do not run the power-loss clause (it needs FUSE); reported as switched off, never as passed",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the data and crash points (default 0)")
    parser.add_argument("--verbose", "-v", action="store_true", help="show what each passing clause exercised")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..testing.catalog import CLAUSES, by_name
    from ..testing.runner import format_report, run_kit
    from ..testing.subject import KitOptions

    if args.list:
        for clause in CLAUSES:
            print(f"{clause.name}\n    {clause.description}")
        return int(ExitCode.OK)
    if not args.url:
        raise OptionError(
            "conformance needs a scratch location URL", hint="e.g. transfercore conformance posix:///tmp/scratch"
        )
    try:
        clauses = [by_name(n) for n in args.clause] if args.clause else list(CLAUSES)
    except TransferCoreError as exc:
        raise OptionError(str(exc.args[0]), hint=exc.hint) from None
    options = KitOptions(power_loss=not args.no_power_loss, seed=args.seed)
    report = run_kit(args.url, options, clauses)
    if args.json:
        doc = {
            "url": report.url,
            "ok": report.ok,
            "not_run": report.not_run(),
            "clauses": [
                {"name": r.clause.name, "outcome": r.outcome.value, "evidence": r.verdict.evidence,
                 "seconds": round(r.seconds, 3)}
                for r in report.results
            ],
        }
        print(json.dumps(doc, indent=2))
    else:
        print(format_report(report, verbose=args.verbose))
    if not report.ok:
        return int(ExitCode.NONCONFORMANT)
    return int(ExitCode.NOT_RUN if report.not_run() else ExitCode.OK)
