"""copy_local_batch: small local files copied, synced, verified and published
by one C call; nothing is published before the batch's durable point."""

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap

import crc32c
import pytest
from transfercore_posix import batchcopy, names

from transfercore.contract import LocalFile
from transfercore.registry import open_location


def _sources(tmp_path, n, sub="src"):
    src = tmp_path / sub
    src.mkdir()
    files = []
    for i in range(n):
        p = src / f"f{i:03d}"
        p.write_bytes(os.urandom(i * 37 % 5000))
        os.chmod(p, 0o600 + (i % 2) * 0o40)
        os.utime(p, ns=(10**18 + i, 10**18 + i))
        files.append(p)
    return files


def _local(p, dst):
    st = os.lstat(p)
    return LocalFile(str(p), f"{dst}/{p.name}", st.st_size, st.st_mtime_ns, st.st_mode, st.st_dev, st.st_ino)


def test_the_extension_is_built():
    assert batchcopy.available(), "transfercore_posix._batchcopy is missing: reinstall the driver with a C compiler"


def test_crc32c_is_the_packages_value():
    for n in (0, 1, 7, 8, 9, 4096, 4099):
        data = os.urandom(n)
        buf = batchcopy.ffi.new("unsigned char[]", data) if n else batchcopy.ffi.NULL
        assert batchcopy.lib.tc_crc32c(0, buf, n) == crc32c.crc32c(data)


@pytest.mark.parametrize("mode", ["fsync", "syncfs"])
def test_a_batch_is_published_whole_with_attributes_and_facts(tmp_path, mode):
    files = _sources(tmp_path, 40)
    dst = tmp_path / "dst"
    dst.mkdir()
    driver = open_location(f"posix://{dst}?batch_sync={mode}").driver
    out = driver.copy_local_batch([_local(p, dst) for p in files], "crc32c")
    assert out is not None and all(o is not None for o in out)
    for p, (checksum, info) in zip(files, out, strict=True):
        got = dst / p.name
        assert got.read_bytes() == p.read_bytes()
        assert checksum == f"{crc32c.crc32c(p.read_bytes()):08x}"
        st = os.lstat(got)
        assert (st.st_mode & 0o7777, st.st_mtime_ns) == (os.lstat(p).st_mode & 0o7777, os.lstat(p).st_mtime_ns)
        # what a later run compares: as lstat reports it after the rename
        assert info == driver.lstat(str(got))
    assert not [n for n in os.listdir(dst) if names.is_hidden(n)]


def test_a_changed_or_missing_source_is_not_published_and_leaves_nothing(tmp_path):
    files = _sources(tmp_path, 6)
    dst = tmp_path / "dst"
    dst.mkdir()
    batch = [_local(p, dst) for p in files]
    files[1].write_bytes(b"changed since the walk")  # size and time move
    os.unlink(files[2])
    # same bytes, another inode: the copy is made while the original exists, so the file system
    # cannot hand the freed inode number back to it (unlink-then-create sometimes did)
    replacement = files[3].with_name("replacement")
    replacement.write_bytes(files[3].read_bytes())
    os.utime(replacement, ns=(batch[3].mtime_ns, batch[3].mtime_ns))
    os.replace(replacement, files[3])
    assert os.stat(files[3]).st_ino != batch[3].ino
    out = open_location(f"posix://{dst}").driver.copy_local_batch(batch, "crc32c")
    assert [o is not None for o in out] == [True, False, False, False, True, True]
    assert sorted(os.listdir(dst)) == ["f000", "f004", "f005"]  # no partial file left either


def test_an_entry_in_the_way_fails_that_file_only(tmp_path):
    files = _sources(tmp_path, 3)
    dst = tmp_path / "dst"
    (dst / "f001").mkdir(parents=True)
    (dst / "f001" / "x").write_bytes(b"x")
    out = open_location(f"posix://{dst}").driver.copy_local_batch([_local(p, dst) for p in files], "crc32c")
    assert [o is not None for o in out] == [True, False, True]
    assert sorted(os.listdir(dst)) == ["f000", "f001", "f002"] and (dst / "f001").is_dir()


def test_not_offered_where_it_cannot_keep_the_promise(tmp_path):
    files = _sources(tmp_path, 2)
    dst = tmp_path / "dst"
    dst.mkdir()
    batch = [_local(p, dst) for p in files]
    assert open_location(f"posix://{dst}").driver.copy_local_batch(batch, "sha256") is None
    confined = open_location(f"posix:///?root={dst}").driver
    assert confined.copy_local_batch([_local(p, "") for p in files], "crc32c") is None


SCRIPT = textwrap.dedent("""
    import os, sys
    from transfercore.contract import LocalFile
    from transfercore.registry import open_location
    src, dst, mode = sys.argv[1:4]
    batch = []
    for name in sorted(os.listdir(src)):
        st = os.lstat(os.path.join(src, name))
        batch.append(LocalFile(os.path.join(src, name), dst + "/" + name, st.st_size, st.st_mtime_ns,
                               st.st_mode, st.st_dev, st.st_ino))
    out = open_location("posix://" + dst + "?batch_sync=" + mode).driver.copy_local_batch(batch, "crc32c")
    os.write(1, ("REPORTED %d\\n" % sum(o is not None for o in out)).encode())
""")


@pytest.mark.parametrize("mode", ["fsync", "syncfs"])
def test_nothing_is_published_or_reported_before_the_batch_is_durable(tmp_path, mode):
    """The system calls in order: every file written, then the durable point
    (one syncfs, or an fsync of every file), then the read-backs and renames,
    then the directory synced, and only then the report."""
    if shutil.which("strace") is None:
        pytest.fail("strace is needed (Debian package strace)")
    _sources(tmp_path, 12)
    dst = tmp_path / "dst"
    dst.mkdir()
    trace = tmp_path / "trace"
    script = tmp_path / "batch_script.py"
    script.write_text(SCRIPT)
    proc = subprocess.run(["strace", "-f", "-qq", "-o", str(trace), "-e",
                           "trace=openat,pwrite64,fsync,syncfs,rename,renameat,renameat2,write", sys.executable, str(script),
                           str(tmp_path / "src"), str(dst), mode],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "REPORTED 12" in proc.stdout
    lines = [line.split(None, 1)[1] for line in trace.read_text().splitlines() if " " in line]
    creates = [i for i, c in enumerate(lines) if c.startswith("openat(") and ".tcpart" in c and "O_CREAT" in c]
    # (renameat within the directory's descriptor: the names are relative)
    renames = [i for i, c in enumerate(lines) if c.startswith("rename") and ".tcpart" in c]
    report = next(i for i, c in enumerate(lines) if c.startswith("write(1,") and "REPORTED" in c)
    if mode == "syncfs":
        durable = [i for i, c in enumerate(lines) if c.startswith("syncfs(")]
        assert len(durable) == 1
    else:
        durable = [i for i, c in enumerate(lines) if c.startswith("fsync(")][:12]
        assert len(durable) == 12
    assert len(creates) == 12 and len(renames) == 12
    assert max(creates) < min(durable) and max(durable) < min(renames)
    dir_syncs = [i for i, c in enumerate(lines) if c.startswith("fsync(") and i > max(renames)]
    assert dir_syncs and max(renames) < min(dir_syncs) < report


def test_power_cut_after_the_call_loses_nothing_it_published(tmp_path):
    """On the FUSE power-loss file system (which keeps only what was fsynced):
    every file the call returned as published survives a cut."""
    from transfercore.testing.powerloss import PowerLossFS, check_fuse

    check_fuse()
    files = _sources(tmp_path, 30)
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    backing = tempfile.mkdtemp(prefix="transfercore-powerloss-")
    fs = PowerLossFS(backing, str(mountpoint))
    try:
        fs.mount()
        driver = open_location(f"posix://{mountpoint}?batch_sync=fsync").driver
        out = driver.copy_local_batch([_local(p, mountpoint) for p in files], "crc32c")
        assert all(o is not None for o in out)
        fs.crash(remount=True)
        for p in files:
            assert (mountpoint / p.name).read_bytes() == p.read_bytes()
    finally:
        if fs.mounted:
            fs.crash(remount=False)
        shutil.rmtree(backing, ignore_errors=True)


TREE_SCRIPT = textwrap.dedent("""
    import os, sys
    from transfercore.contract import LocalFile
    from transfercore.registry import open_location
    src, dst = sys.argv[1:3]
    batch = []
    for sub in sorted(os.listdir(src)):
        for name in sorted(os.listdir(os.path.join(src, sub))):
            st = os.lstat(os.path.join(src, sub, name))
            batch.append(LocalFile(os.path.join(src, sub, name), dst + "/" + sub + "/" + name, st.st_size,
                                   st.st_mtime_ns, st.st_mode, st.st_dev, st.st_ino))
    out = open_location("posix://" + dst + "?batch_sync=syncfs").driver.copy_local_batch(batch, "crc32c")
    os.write(1, ("REPORTED %d\\n" % sum(o is not None for o in out)).encode())
""")


def _trace_tree_batch(tmp_path, subs, per_sub):
    if shutil.which("strace") is None:
        pytest.fail("strace is needed (Debian package strace)")
    (tmp_path / "src").mkdir()
    for sub in subs:
        _sources(tmp_path / "src", per_sub, sub)
    script = tmp_path / "tree_script.py"
    script.write_text(TREE_SCRIPT)
    trace = tmp_path / "trace"
    proc = subprocess.run(["strace", "-f", "-qq", "-o", str(trace), "-e",
                           "trace=openat,fsync,syncfs,rename,renameat,renameat2,write", sys.executable, str(script),
                           str(tmp_path / "src"), str(tmp_path / "dst")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert f"REPORTED {len(subs) * per_sub}" in proc.stdout
    lines = [line.split(None, 1)[1] for line in trace.read_text().splitlines() if " " in line]
    return {
        "creates": [i for i, c in enumerate(lines) if c.startswith("openat(") and ".tcpart" in c and "O_CREAT" in c],
        # (renameat within the directory's descriptor: the names are relative)
        "renames": [i for i, c in enumerate(lines) if c.startswith("rename") and ".tcpart" in c],
        "syncfs": [i for i, c in enumerate(lines) if c.startswith("syncfs(")],
        "fsync": [i for i, c in enumerate(lines) if c.startswith("fsync(")],
        "report": [i for i, c in enumerate(lines) if c.startswith("write(1,") and "REPORTED" in c],
    }


def test_a_batch_over_several_directories_makes_the_new_names_durable_with_one_more_syncfs(tmp_path):
    """One syncfs for the data, one for every directory's new names, where
    one sync per directory cost a journal commit each."""
    dst = tmp_path / "dst"
    for sub in ("a", "b", "c"):
        (dst / sub).mkdir(parents=True)
    at = _trace_tree_batch(tmp_path, ("a", "b", "c"), 4)
    assert len(at["creates"]) == 12 and len(at["renames"]) == 12
    assert len(at["syncfs"]) == 2 and not at["fsync"]
    data, names_ = at["syncfs"]
    assert max(at["creates"]) < data < min(at["renames"]) and max(at["renames"]) < names_ < at["report"][0]


def test_a_file_below_a_mount_point_is_synced_on_its_own(tmp_path):
    """A syncfs reaches one file system: the files of a batch on another
    (a mount point inside the destination tree) are synced one by one, and
    their directory too."""
    dst = tmp_path / "dst"
    for sub in ("a", "m"):
        (dst / sub).mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(dst / "m")],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs here (the tests run as root, as CI does): {mounted.stderr.strip()}")
    try:
        at = _trace_tree_batch(tmp_path, ("a", "m"), 3)
    finally:
        subprocess.run(["umount", str(dst / "m")], check=True)
    assert len(at["syncfs"]) == 1
    # the three files on the tmpfs before any rename, then each directory once
    assert len([i for i in at["fsync"] if i < min(at["renames"])]) == 3
    assert len([i for i in at["fsync"] if max(at["renames"]) < i < at["report"][0]]) == 2


def test_the_paths_of_a_batch_go_to_c_in_one_buffer_and_a_short_one_is_refused():
    items = batchcopy.ffi.new("tc_item[]", 2)
    names_ = [b"/s/a", b"/d/.a.x.tcpart", b"/d/a", b"/d", b"/s/\xffb", b"/d/.b.y.tcpart", b"/d/\xffb", b"/d"]
    blob = b"\0".join(names_) + b"\0"
    buf = batchcopy.ffi.new("char[]", blob)
    assert batchcopy.lib.tc_bind_paths(items, 2, buf, len(blob)) == 0
    got = [batchcopy.ffi.string(getattr(items[i], f)) for i in range(2) for f in ("src", "partial", "final", "dir")]
    assert got == names_
    # one string short, or one too many: nothing is copied from a misaligned buffer
    short = b"\0".join(names_[:-1]) + b"\0"
    assert batchcopy.lib.tc_bind_paths(items, 2, batchcopy.ffi.new("char[]", short), len(short)) == -1
    extra = blob + b"/more\0"
    assert batchcopy.lib.tc_bind_paths(items, 2, batchcopy.ffi.new("char[]", extra), len(extra)) == -1


def test_names_that_are_not_utf8_are_copied_byte_for_byte(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    raw = os.fsdecode(b"caf\xe9-\xff")
    (src / raw).write_bytes(b"latin-1 name")
    (src / "plain").write_bytes(b"plain name")
    dst = tmp_path / "dst"
    dst.mkdir()
    driver = open_location(f"posix://{dst}").driver
    out = driver.copy_local_batch([_local(src / raw, dst), _local(src / "plain", dst)], "crc32c")
    assert out is not None and all(o is not None for o in out)
    assert (dst / raw).read_bytes() == b"latin-1 name" and (dst / "plain").read_bytes() == b"plain name"
    assert sorted(os.listdir(os.fsencode(dst))) == [b"caf\xe9-\xff", b"plain"]


def test_each_directory_of_a_batch_is_resolved_once_and_its_files_by_name_in_it(tmp_path):
    """A tree's paths are long: a file's five calls by name (open, the second
    look at the source, the partial file's creation, the rename) take its
    name relative to its directory's descriptor, not its whole path, and each
    directory is opened once for the batch."""
    if shutil.which("strace") is None:
        pytest.fail("strace is needed (Debian package strace)")
    deep = tmp_path.joinpath(*[f"level{i}" for i in range(12)])
    deep.mkdir(parents=True)
    _sources(deep, 10)
    dst = tmp_path / "dst"
    dst.mkdir()
    trace = tmp_path / "trace"
    script = tmp_path / "batch_script.py"
    # (the script's own listing and lstats before the call are not the batch's)
    script.write_text(SCRIPT.replace("out = open_location", "os.write(2, b'BATCH\\n')\nout = open_location"))
    proc = subprocess.run(["strace", "-f", "-qq", "-o", str(trace), "-e",
                           "trace=open,openat,stat,lstat,newfstatat,rename,renameat,renameat2,unlink,unlinkat,write",
                           sys.executable, str(script), str(deep / "src"), str(dst), "fsync"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "REPORTED 10" in proc.stdout
    calls = [line.split(None, 1)[1] for line in trace.read_text().splitlines() if " " in line]
    calls = calls[next(i for i, c in enumerate(calls) if c.startswith("write(2, \"BATCH")):]
    by_path = [c for c in calls if f'"{deep}/src/f' in c or f'"{dst}/' in c]
    assert by_path == [], by_path[:3]
    assert len([c for c in calls if c.startswith("openat(") and f'"{deep}/src"' in c and "O_DIRECTORY" in c]) == 1
    assert len([c for c in calls if c.startswith("openat(") and f'"{dst}"' in c and "O_DIRECTORY" in c]) == 1
    assert len([c for c in calls if c.startswith("openat(") and '"f00' in c and "O_NOFOLLOW" in c]) == 10
    assert len([c for c in calls if c.startswith("renameat") and ".tcpart" in c]) == 10
    for i in range(10):
        assert (dst / f"f{i:03d}").read_bytes() == (deep / "src" / f"f{i:03d}").read_bytes()


def test_a_partial_name_outside_the_files_directory_is_refused_before_anything_is_made(tmp_path):
    """Every step of a file acts in its one directory: an item whose partial
    or final name lies elsewhere fails (the caller copies it the ordinary
    way) and creates nothing anywhere."""
    files = _sources(tmp_path, 2)
    dst = tmp_path / "dst"
    other = tmp_path / "other"
    dst.mkdir()
    other.mkdir()
    items = batchcopy.ffi.new("tc_item[]", 2)
    strings = []
    for i, p in enumerate(files):
        where = other if i == 0 else dst
        strings += [str(p), f"{where}/.{p.name}.{i:016x}.tcpart", f"{dst}/{p.name}", str(dst)]
        st = os.lstat(p)
        items[i].size, items[i].mtime_ns, items[i].mode = st.st_size, st.st_mtime_ns, st.st_mode
        items[i].dev, items[i].ino = st.st_dev, st.st_ino
    blob = os.fsencode("\0".join(strings) + "\0")
    keep = batchcopy.ffi.new("char[]", blob)
    assert batchcopy.lib.tc_bind_paths(items, 2, keep, len(blob)) == 0
    assert batchcopy.lib.tc_copy_batch(items, 2, 0, 1, 2**62) == 0
    assert (items[0].stage, items[0].err) == (batchcopy.lib.TC_DEST, 22)  # EINVAL
    assert items[1].stage == batchcopy.lib.TC_OK
    assert os.listdir(other) == [] and os.listdir(dst) == ["f001"]
