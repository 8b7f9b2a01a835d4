"""Power loss under the DSI (the project's power-loss file system) after 111 markers.

After two restart markers the power is cut: every byte those markers named must be in
the partial file, the driver's record must back the marker, and a resume with REST must
be accepted and end identical.  The same upload through the server's built-in file
storage, side by side, loses what its markers named (it never flushes).
"""

from __future__ import annotations

import random
import shutil
import tempfile
from pathlib import Path

import pytest
from transfercore_globus_dsi.testing import Control, PowerLossTrial

from transfercore.registry import open_location
from transfercore.testing.powerloss import check_fuse

pytestmark = [pytest.mark.globus, pytest.mark.fuse]

SIZE = 40 * 1024 * 1024


@pytest.fixture
def work() -> Path:
    # outside pytest's private tmp_path: the built-in server's sessions run as nobody
    d = Path(tempfile.mkdtemp(prefix="tc-dsi-powerloss-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def source(work: Path) -> Path:
    p = work / "source.bin"
    p.write_bytes(random.Random(12).randbytes(SIZE))
    return p


def test_power_loss_after_markers_loses_no_marked_byte_and_resumes(work, source, capsys):
    check_fuse()
    trial = PowerLossTrial("dsi", work, source, markers=2)
    try:
        trial.run()
        with capsys.disabled():
            print(f"\ntransfercore DSI: {trial.lost} of {trial.marked.total()} marked bytes lost at the power cut")
        assert trial.marked and trial.marked.total() < SIZE, "the cut must come before the end"
        assert trial.survivor is not None, "the partial file did not survive"
        assert trial.lost == 0
        # the driver's durable record backs every byte the markers named
        driver = open_location(f"posix://{trial.target}").driver
        assert driver.partial(f"{trial.target}/dst.bin").contains(trial.marked)
        # resume: REST at the end of the marked prefix, accepted by the driver
        n = trial.marked.prefix_end()
        assert n > 0
        payload = source.read_bytes()
        assert trial.server is not None
        c = Control(trial.server.port)
        c.login()
        replies = c.stor("/dst.bin", payload[n:], alloc=SIZE, rest=str(n))
        c.close()
        assert replies[-1][0] == 226, replies
        assert (trial.target / "dst.bin").read_bytes() == payload
    finally:
        trial.close()


def test_power_loss_built_in_file_storage_side_by_side(work, source, capsys):
    """The same cut under the server's own file storage: its 111 markers name bytes it
    never flushed, and the power-loss file system shows them lost."""
    check_fuse()
    trial = PowerLossTrial("file", work, source, markers=2)
    try:
        trial.run()
        with capsys.disabled():
            print(f"\nbuilt-in file storage: {trial.lost} of {trial.marked.total()} marked bytes lost at the power cut")
        assert trial.marked
        assert trial.lost > 0
    finally:
        trial.close()

