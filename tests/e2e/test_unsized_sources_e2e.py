"""Sources whose size cannot be known in advance, through the real command.

/proc files report size 0 yet have content, a FIFO has no size at all,
standard input may be a pipe, /dev/zero never ends: each is read to its end
(never published short or empty) or refused with exit 2, and a copy waiting
on a FIFO that no one writes stops on SIGTERM.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

import transfercore
from transfercore.checksums import digest_bytes
from transfercore.errors import UnsizedSource

TIMEOUT = 60


def cli(*args):
    return [sys.executable, "-m", "transfercore", "copy", *args]


def run(*args, **kw):
    return subprocess.run(cli(*args), capture_output=True, timeout=TIMEOUT, **kw)


def events(out):
    return [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]


def no_spool_left(directory):
    return not [n for n in os.listdir(directory) if n.endswith(".tcstream") or n.startswith(".out")]


@pytest.mark.parametrize("proc", ["/proc/version", "/proc/self/mountinfo"])
def test_a_proc_file_is_read_to_its_end_not_published_empty(proc, tmp_path):
    assert os.stat(proc).st_size == 0  # the premise: its size says nothing
    dst = tmp_path / "out"
    done = run(proc, str(dst), "--json", "--journal", str(tmp_path / "j.sqlite"))
    assert done.returncode == 0, done.stderr
    evs = events(done.stdout)
    (read,) = [e for e in evs if e["event"] == "source-done"]
    (finished,) = [e for e in evs if e["event"] == "done"]
    body = dst.read_bytes()
    assert len(body) == read["bytes"] == finished["size"] > 0
    assert digest_bytes("crc32c", body) == read["checksum"] == finished["checksum"]
    if proc == "/proc/version":
        assert body == open(proc, "rb").read()
    assert [e for e in evs if e["event"] == "source-read"][0]["resumable"] is False
    assert [e for e in evs if e["event"] == "start"][0]["source"] == proc  # not the spool's name
    assert no_spool_left(tmp_path)


def test_a_fifo_is_read_to_its_end_while_its_writer_writes(tmp_path):
    data = random.Random(5).randbytes(5 * 1024 * 1024 + 17)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    (tmp_path / "data").write_bytes(data)
    dst = tmp_path / "out"
    copy = subprocess.Popen(cli(str(fifo), str(dst), "--quiet", "--journal", str(tmp_path / "j.sqlite")),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # The writer opens the FIFO on its own time, after the copy already waits.
    writer = subprocess.Popen(["dd", f"if={tmp_path / 'data'}", f"of={fifo}", "bs=65536", "status=none"])
    try:
        out, err = copy.communicate(timeout=TIMEOUT)
        assert writer.wait(timeout=TIMEOUT) == 0
    finally:
        for proc in (copy, writer):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert copy.returncode == 0, err
    assert dst.read_bytes() == data
    assert no_spool_left(tmp_path)


def test_standard_input_from_a_pipe(tmp_path):
    data = random.Random(6).randbytes(3 * 1024 * 1024)
    dst = tmp_path / "out"
    done = run("-", str(dst), "--json", "--journal", str(tmp_path / "j.sqlite"), input=data)
    assert done.returncode == 0, done.stderr
    assert dst.read_bytes() == data
    (read,) = [e for e in events(done.stdout) if e["event"] == "source-done"]
    assert read["bytes"] == len(data) and read["checksum"] == digest_bytes("crc32c", data)


def test_a_device_is_refused_unless_limited_and_past_the_limit_is_refused_too(tmp_path):
    dst = tmp_path / "out"
    refused = run("/dev/zero", str(dst), "--journal", str(tmp_path / "j.sqlite"))
    assert refused.returncode == 2 and b"--max-size" in refused.stderr
    limited = run("/dev/zero", str(dst), "--max-size", "1M", "--quiet", "--journal", str(tmp_path / "j.sqlite"))
    assert limited.returncode == 2 and b"more than --max-size" in limited.stderr
    assert not dst.exists() and no_spool_left(tmp_path)
    empty = run("/dev/null", str(dst), "--max-size", "1M", "--quiet", "--journal", str(tmp_path / "j.sqlite"))
    assert empty.returncode == 0, empty.stderr
    assert dst.read_bytes() == b""  # /dev/null truly is empty


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_copy_waiting_on_a_fifo_without_writer_stops_on_a_signal(sig, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    dst = tmp_path / "out"
    copy = subprocess.Popen(cli(str(fifo), str(dst), "--json", "--journal", str(tmp_path / "j.sqlite")),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = copy.stdout.readline()  # the copy is now waiting for a writer
        assert json.loads(line)["event"] == "source-read"
        copy.send_signal(sig)
        began = time.monotonic()
        copy.wait(timeout=10)
        assert time.monotonic() - began < 5
    finally:
        if copy.poll() is None:
            copy.kill()
            copy.wait()
    assert copy.returncode == 130, copy.stderr.read()
    assert b"nothing was published" in copy.stderr.read()
    assert not dst.exists() and no_spool_left(tmp_path)


def test_the_library_refuses_unsized_sources_without_blocking(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    # In a subprocess: before the fix, open() waited forever for a writer.
    probe = subprocess.run(
        [sys.executable, "-c",
         "import sys, transfercore\n"
         "from transfercore.errors import UnsizedSource\n"
         "try:\n    transfercore.copy(sys.argv[1], sys.argv[2])\n"
         "except UnsizedSource as exc:\n    print('refused', exc)\n",
         str(fifo), str(tmp_path / "out")],
        capture_output=True, text=True, timeout=TIMEOUT)
    assert probe.stdout.startswith("refused") and "FIFO" in probe.stdout, probe.stderr
    for source in ("/proc/version", "/dev/zero"):
        with pytest.raises(UnsizedSource):
            transfercore.copy(source, str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_a_destination_another_run_holds_is_refused_before_the_source_is_read(tmp_path):
    from transfercore.journal import Journal

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    dst = tmp_path / "out"
    journal = tmp_path / "j.sqlite"
    with Journal(journal) as j:
        lock = j.claim("posix:///elsewhere", f"posix://{dst}")
        try:
            refused = run(str(fifo), str(dst), "--journal", str(journal))
        finally:
            lock.release()
    assert refused.returncode == 1 and b"being written by another transfercore run" in refused.stderr
    assert not dst.exists() and no_spool_left(tmp_path)
