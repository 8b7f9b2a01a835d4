#!/usr/bin/env bash
# The second of the two set-up commands (README), and what CI runs (.ci/run):
#
#   sudo scripts/test.sh [TOX ARGUMENTS]
#
# installs what the tests need on a Debian machine (the packages of .ci/debian-packages.txt,
# tox in .ci/venv, the Node clients of the HTTP tests), then runs tox: the whole suite, ruff
# and mypy (arguments go to tox, e.g. `-e lint` or `-e tests -- tests/gridftp -x`).
# Root: the power-loss tests use /dev/fuse and loop devices.  Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2046
apt-get install -y -qq --no-install-recommends $(grep -v '^#' .ci/debian-packages.txt)

# tox in a venv of its own: Debian's Python refuses system-wide pip installs (PEP 668).
python3 -m venv .ci/venv
.ci/venv/bin/python -m pip install -q --upgrade pip
.ci/venv/bin/python -m pip install -q -r .ci/requirements.txt

# the Node clients the HTTP upload tests drive (tus-js-client), pinned by the lock file
if ! command -v npm >/dev/null; then
    apt-get install -y -qq --no-install-recommends nodejs npm
fi
npm ci --prefix tests/http/node --no-audit --no-fund --loglevel=error

exec .ci/venv/bin/python -m tox "$@"
