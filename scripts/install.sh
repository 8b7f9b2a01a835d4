#!/usr/bin/env bash
# The first of the two set-up commands (README): install everything and check it with a copy.
#
#   scripts/install.sh
#
# installs the Debian packages of .ci/debian-packages.txt (through sudo unless run as root),
# makes the virtual environment .venv beside this script's checkout, installs into it the core
# (with the FUSE, HTTP and metrics extras), every driver and the Globus server DSI, and ends with
# a first verified copy into the HPSS emulator.  Run it again at any time: every step is
# idempotent (the packages and the venv are kept, pip brings the checkout's versions, and the
# copy is found up to date).
set -euo pipefail
cd "$(dirname "$0")/.."

sudo=""
if [ "$(id -u)" != 0 ]; then
    sudo="sudo"
fi

echo "== Debian packages (.ci/debian-packages.txt)"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# shellcheck disable=SC2046
$sudo apt-get install -y -qq --no-install-recommends $(grep -v '^#' .ci/debian-packages.txt)

echo "== virtual environment .venv"
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip

echo "== transfercore, every driver and the Globus server DSI"
# one pip call: the drivers' dependency on transfercore is this checkout, never an index
.venv/bin/python -m pip install -q '.[fuse,http,metrics]' ./drivers/posix ./drivers/mock ./drivers/hpss ./drivers/s3 ./embeddings/globus-dsi

echo "== a first verified copy into the HPSS emulator"
.venv/bin/transfercore drivers >/dev/null
.venv/bin/transfercore copy --quiet README.md hpss:///transfercore-install-check.md
# the copy verified itself (read back and compared); read it back once more, independently
expected=$(.venv/bin/transfercore checksum README.md --algorithm sha256 | cut -d' ' -f2)
stored=$(.venv/bin/transfercore checksum hpss:///transfercore-install-check.md --algorithm sha256 | cut -d' ' -f2)
if [ -z "$stored" ] || [ "$expected" != "$stored" ]; then
    echo "install check failed: the copy in the HPSS emulator differs from README.md" >&2
    exit 1
fi
echo "ok: README.md copied into the HPSS emulator and read back equal (sha256 $stored)"
echo "next: . .venv/bin/activate, then see README.md; the tests: sudo scripts/test.sh"
