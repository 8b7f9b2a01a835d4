import os
import threading
import time

import pytest

from transfercore.checksums import digest_bytes
from transfercore.engine.stream import POLL_SECONDS, spool
from transfercore.errors import TransferAborted, UnsizedSource


def test_spool_reads_a_pipe_to_its_end_with_the_checksum_of_what_was_read(tmp_path):
    data = os.urandom(3 * 1024 * 1024 + 5)
    r, w = os.pipe()

    def feed():
        view = memoryview(data)
        while view:
            view = view[os.write(w, view[:65536]):]
        os.close(w)

    writer = threading.Thread(target=feed)
    writer.start()
    try:
        spooled = spool(r, str(tmp_path), "out", display="a pipe", stop=threading.Event(), algorithm="crc32c")
    finally:
        writer.join(10)
        os.close(r)
    assert spooled.size == len(data) and spooled.checksum == digest_bytes("crc32c", data)
    assert open(spooled.path, "rb").read() == data
    assert os.path.dirname(spooled.path) == str(tmp_path) and os.path.basename(spooled.path).startswith(".out.")


def test_a_stop_ends_a_wait_for_bytes_that_never_come(tmp_path):
    r, w = os.pipe()
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    began = time.monotonic()
    try:
        with pytest.raises(TransferAborted, match="nothing was published"):
            spool(r, str(tmp_path), "out", display="a pipe", stop=stop)
    finally:
        os.close(r)
        os.close(w)
    assert time.monotonic() - began < 0.3 + 3 * POLL_SECONDS
    assert os.listdir(tmp_path) == []  # the spool file is gone


def test_more_than_max_size_is_refused(tmp_path):
    fd = os.open("/dev/zero", os.O_RDONLY)
    try:
        with pytest.raises(UnsizedSource, match="more than --max-size 100000"):
            spool(fd, str(tmp_path), "out", display="/dev/zero", stop=threading.Event(), max_size=100_000)
    finally:
        os.close(fd)
    assert os.listdir(tmp_path) == []
