"""The README works as written: every command of its ``sh`` blocks runs, in a fresh home directory.

Some lines are checked instead of run: installs (they would install into a
fresh venv from the network; tox installs the same distributions) must name
what tox installs and what the conformance kit asks for; the test command
(``tox``) must be what ``.ci/run`` runs once it has set up the machine; and the real Globus server's own line
(it listens on every interface, which no test may do) is named in
``NOT_RUN``, so that no other line escapes.  Scratch paths (``/tmp/``,
``/srv/``) go to the test's own directory and the server's port to a free
one, so that runs in parallel do not meet; nothing else is changed.
"""

from __future__ import annotations

import configparser
import hashlib
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from transfercore.testing.loopback import free_port, wait_port

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
BLOCKS = [block.strip().splitlines() for block in re.findall(r"```sh\n(.*?)```", README, re.S)]
INSTALL = next(block for block in BLOCKS if block[0].startswith("sudo apt-get install"))
TEST_COMMAND = next(block for block in BLOCKS if block == ["tox"])
SETUP = next(block for block in BLOCKS if block[0].startswith("scripts/install.sh"))
RUNNABLE = [block for block in BLOCKS if block not in (INSTALL, TEST_COMMAND, SETUP)]
NOT_RUN = {
    "transfercore globus-server 'posix:///?root=/srv/data' -p 2811 -aa -anonymous-user ftpuser":
        "the real globus-gridftp-server listens on every interface; tests/gridftp and the DSI's tests run it on 127.0.0.1",
    "transfercore globus-server --warm 4 'posix:///?root=/srv/data' -p 2811 -aa -anonymous-user ftpuser":
        "the same server with warm sessions; the DSI's tests/test_warm.py runs it on 127.0.0.1",
}


def _tox_installs() -> set[str]:
    tox = configparser.ConfigParser(interpolation=None)
    tox.read(ROOT / "tox.ini")
    deps = [d.strip().removeprefix("-e").replace("{toxinidir}", ".") for d in tox["testenv"]["deps"].split("\n")]
    return {d for d in deps if d.startswith("./")}


def _line(block: list[str], word: str) -> list[str]:
    (line,) = [line for line in block if word in line]
    return shlex.split(line.split("#")[0])


def test_the_install_block_installs_what_tox_installs_and_the_kit_needs():
    pip = _line(INSTALL, "pip install")
    targets = pip[pip.index("install") + 1 :]
    # a driver's test extra (the S3 driver's test server) is the suite's business, not the user's
    tox_drivers = {re.sub(r"\[.*\]$", "", d) for d in _tox_installs() if d.startswith("./drivers/")}
    assert tox_drivers and tox_drivers <= set(targets)
    # the core with the extra of the kit's power-loss filesystem
    assert ".[fuse]" in targets and "mfusepy" in (ROOT / "pyproject.toml").read_text()
    apt = set(_line(INSTALL, "apt-get install"))
    ci = {p for p in (ROOT / ".ci/debian-packages.txt").read_text().split() if not p.startswith("#")}
    # every package the kit's NOT RUN hints name, and the compiler of the HPSS driver
    kit = (ROOT / "transfercore/testing/checks/syscalls.py").read_text()
    kit += (ROOT / "transfercore/testing/powerloss/mount.py").read_text()
    asked = set(re.findall(r"apt-get install (\w[\w.+-]*\w)", kit))
    assert {"strace", "fuse3"} <= asked <= apt
    assert {"gcc", "libc6-dev", "python3-dev", "python3-venv"} <= apt
    assert apt - {"-y", "libfuse3-3"} <= ci | {"apt-get", "install", "sudo"}


def test_the_test_command_is_what_ci_runs_after_installing_what_the_tests_need():
    assert TEST_COMMAND == ["tox"]
    assert "sudo scripts/test.sh" in README
    script = (ROOT / "scripts/test.sh").read_text()
    assert "debian-packages.txt" in script and "apt-get install" in script
    assert script.rstrip().splitlines()[-1].endswith('-m tox "$@"')


def _commands(text: str) -> list[str]:
    return [line.split("#")[0].strip() for line in text.splitlines() if line.split("#")[0].strip()]


def test_the_two_set_up_commands_are_the_scripts_ci_runs():
    """The README's top block: the install script, then the test script; .ci/run runs both, in order."""
    assert _commands("\n".join(SETUP)) == ["scripts/install.sh", "sudo scripts/test.sh"]
    assert README.index("scripts/install.sh") < README.index("## Install and run")
    ci = _commands((ROOT / ".ci/run").read_text())
    assert ci.index("scripts/install.sh") < ci.index("exec scripts/test.sh") == len(ci) - 1
    for name in ("install.sh", "test.sh"):
        assert os.access(ROOT / "scripts" / name, os.X_OK), name
    install = (ROOT / "scripts/install.sh").read_text()
    assert "set -euo pipefail" in install and ".ci/debian-packages.txt" in install
    # the core, every driver (the example driver is an example, not a product) and the DSI, in one pip call
    (pip,) = [shlex.split(line) for line in _commands(install) if "pip install" in line and "./drivers" in line]
    targets = {re.sub(r"\[.*\]$", "", t) for t in pip[pip.index("install") + 1 :] if not t.startswith("-")}
    shipped = {re.sub(r"\[.*\]$", "", d) for d in _tox_installs()} - {"./examples/append-driver"}
    assert targets == shipped | {"."}, (targets, shipped)
    # and a first copy into the HPSS emulator, read back and compared
    assert re.search(r"transfercore copy .* hpss:///", install)
    assert install.count("transfercore checksum") == 2


def _as_here(line: str, scratch: Path, ports: dict[str, int]) -> str:
    line = line.replace("/tmp/", f"{scratch}/tmp/").replace("/srv/", f"{scratch}/srv/")
    for written, free in ports.items():
        line = line.replace(written, str(free))
    return line


@pytest.fixture
def shell(tmp_path):
    """Run README lines as a user would, with a fresh home directory and the installed commands."""
    home = tmp_path / "home"
    home.mkdir()
    (tmp_path / "tmp").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HPSS_EMU_", "XDG_"))}
    env.update(HOME=str(home), PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}")
    ports = {"2811": free_port(), "2812": free_port()}
    background: list[subprocess.Popen[bytes]] = []

    def run(block: list[str]) -> list[str]:
        outputs = []
        for raw in block:
            line = _as_here(raw, tmp_path, ports)
            if raw.split("#")[0].strip() in NOT_RUN:
                continue
            if raw.startswith("pip install"):
                # installed into this environment by tox, from the same directories
                words = shlex.split(raw.split("#")[0])
                assert set(words[2:]) <= _tox_installs(), raw
                continue
            code = line.split("#")[0].rstrip()
            if code.endswith("&"):
                proc = subprocess.Popen(["bash", "-c", code[:-1]], cwd=ROOT, env=env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                background.append(proc)
                (port,) = [free for written, free in ports.items() if written in raw]
                wait_port(port, proc)  # as a user waits for the server to come up
                continue
            done = subprocess.run(["bash", "-ec", line], cwd=ROOT, env=env, capture_output=True, text=True,
                                  timeout=120)
            assert done.returncode == 0, f"{raw!r} failed ({done.returncode}): {done.stderr}"
            outputs.append(done.stdout)
        return outputs

    run.home = home  # type: ignore[attr-defined]
    yield run
    for proc in background:
        proc.terminate()
        proc.wait(10)


def test_the_first_commands_work_with_no_setup(shell, tmp_path):
    (block,) = [b for b in RUNNABLE if b[0].startswith("transfercore copy README.md")]
    outputs = dict(zip(block, shell(block), strict=True))
    readme = (ROOT / "README.md").read_bytes()
    assert (tmp_path / "tmp/README.copy").read_bytes() == readme
    # the HPSS emulator's default home, and the drivers listing says where it is
    emulator = shell.home / ".local/state/transfercore/hpss-emulator"
    assert (emulator / "README.copy").read_bytes() == readme
    drivers = next(out for line, out in outputs.items() if line.startswith("transfercore drivers"))
    assert f"emulator_root: {emulator}" in drivers
    checksum = next(out for line, out in outputs.items() if "checksum" in line)
    assert checksum.split()[1] == hashlib.md5(readme).hexdigest()
    status = next(out for line, out in outputs.items() if line.startswith("transfercore status"))
    assert status.count("done") == 3
    conformance = next(out for line, out in outputs.items() if "conformance" in line)
    assert " 0 failed" in conformance


@pytest.mark.globus
def test_the_server_commands_work_with_the_real_globus_url_copy(shell, tmp_path):
    (block,) = [b for b in RUNNABLE if any("transfercore serve" in line for line in b)]
    outputs = shell(block)
    big = (tmp_path / "tmp/big").read_bytes()
    assert len(big) == 16 << 20
    assert (tmp_path / "srv/data/big").read_bytes() == big
    assert (tmp_path / "tmp/big.back").read_bytes() == big
    assert (tmp_path / "srv/data/tree/README.md").read_bytes() == (ROOT / "README.md").read_bytes()
    assert (tmp_path / "srv/data/tree/empty").is_dir()
    assert (shell.home / ".local/state/transfercore/hpss-emulator/big").read_bytes() == big
    assert "big" in outputs[-1]


@pytest.mark.globus
def test_the_globus_dsi_commands(shell):
    (block,) = [b for b in RUNNABLE if any("globus-server" in line for line in b)]
    (config,) = shell(block)  # the server's own line is in NOT_RUN
    assert "load_dsi_module" in config or "dsi" in config.lower()


def test_every_runnable_block_is_run_by_a_test():
    assert len(RUNNABLE) == 3
    assert any(b[0].startswith("transfercore copy") for b in RUNNABLE)
    assert any("transfercore serve" in line for b in RUNNABLE for line in b)
    assert any("globus-server" in line for b in RUNNABLE for line in b)
    every = {line.split("#")[0].strip() for b in BLOCKS for line in b}
    assert set(NOT_RUN) <= every, "a line named in NOT_RUN is no longer in the README"
