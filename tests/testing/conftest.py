from __future__ import annotations

import pytest

from transfercore.testing.powerloss import PowerLossFS


@pytest.fixture
def plfs(tmp_path):
    """A mounted power-loss file system; FUSE problems fail the test, never skip it."""
    fs = PowerLossFS(tmp_path / "backing", tmp_path / "mnt", host_fsync=False)
    fs.mount()
    try:
        yield fs
    finally:
        if fs.mounted:
            fs.crash(remount=False)
