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


LIARS = {
    "subdirstore": "kit_liars:SubdirStoreDriver",
    "earlymark": "kit_liars:EarlyMarkDriver",
    "leaky": "kit_liars:LeakyDriver",
    "rangeliar": "kit_liars:RangeLiarDriver",
}


@pytest.fixture
def liars(tmp_path, monkeypatch):
    """The lying drivers of ``liars/kit_liars.py`` installed as a third-party distribution
    (an entry point in a dist-info), visible to this process and to the kit's child processes."""
    import os
    import pathlib

    from transfercore.registry import refresh

    here = pathlib.Path(__file__).parent / "liars"
    site = tmp_path / "liar-site"
    info = site / "kit_liars-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: kit-liars\nVersion: 1.0\n")
    points = "".join(f"{name} = {target}\n" for name, target in LIARS.items())
    (info / "entry_points.txt").write_text(f"[transfercore.drivers]\n{points}")
    for path in (str(here), str(site)):
        monkeypatch.syspath_prepend(path)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(here), str(site), os.environ.get("PYTHONPATH", "")]))
    refresh()
    try:
        yield
    finally:
        refresh()
