import hashlib
import threading
import zlib

import crc32c
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transfercore import checksums
from transfercore.contract import Reader
from transfercore.errors import TransferAborted, TransferCoreError, UnknownChecksum


class BytesReader(Reader):
    def __init__(self, data: bytes, short_at: int | None = None) -> None:
        self.data = data
        self.short_at = short_at
        self.reads: list[tuple[int, int]] = []
        self.lock = threading.Lock()

    @property
    def size(self) -> int:
        return len(self.data)

    def read(self, offset: int, length: int) -> bytes:
        with self.lock:
            self.reads.append((offset, length))
        out = self.data[offset : offset + length]
        if self.short_at is not None and offset <= self.short_at < offset + length:
            return out[: self.short_at - offset]
        return out


@pytest.mark.parametrize(
    "name,expected",
    [("MD5", "md5"), ("ADLER32", "adler32"), ("adler-32", "adler32"), ("CRC32C", "crc32c"),
     ("SHA256", "sha256"), ("sha-256", "sha256"), (" Sha256 ", "sha256"), ("SHA1", "sha1"), ("SHA512", "sha512")],
)
def test_canonical_accepts_gridftp_names(name, expected):
    assert checksums.canonical(name) == expected


@pytest.mark.parametrize("name", ["", "crc32", "sha3", "md4", "none"])
def test_unknown_names_are_refused_with_the_list(name):
    with pytest.raises(UnknownChecksum) as info:
        checksums.canonical(name)
    assert "MD5" in str(info.value) and "CRC32C" in str(info.value)


def test_gridftp_name():
    assert checksums.gridftp_name("sha-256") == "SHA256"


DATA = bytes(range(256)) * 1000 + b"tail"


@pytest.mark.parametrize(
    "alg,reference",
    [
        ("md5", hashlib.md5(DATA).hexdigest()),
        ("sha256", hashlib.sha256(DATA).hexdigest()),
        ("adler32", f"{zlib.adler32(DATA):08x}"),
        ("crc32c", f"{crc32c.crc32c(DATA):08x}"),
    ],
)
def test_incremental_equals_one_shot_reference(alg, reference):
    hasher = checksums.new(alg)
    for i in range(0, len(DATA), 777):
        hasher.update(memoryview(DATA)[i : i + 777])
    assert hasher.hexdigest() == reference
    assert hasher.count == len(DATA)


def test_known_vectors():
    # Published check values for "123456789".
    assert checksums.digest_bytes("crc32c", b"123456789") == "e3069283"
    assert checksums.digest_bytes("adler32", b"Wikipedia") == "11e60398"
    assert checksums.digest_bytes("adler32", b"") == "00000001"
    assert checksums.digest_bytes("crc32c", b"") == "00000000"


@settings(max_examples=30, deadline=None)
@given(st.binary(max_size=5000), st.integers(1, 700), st.integers(1, 4), st.sampled_from(["md5", "adler32", "crc32c"]))
def test_checksum_reader_matches_one_shot(data, block, parallel, alg):
    reader = BytesReader(data)
    assert checksums.checksum_reader(reader, alg, block_size=block, parallel=parallel) == checksums.digest_bytes(alg, data)


def test_checksum_reader_fails_on_short_read_instead_of_hashing_garbage():
    reader = BytesReader(DATA, short_at=5000)
    with pytest.raises(TransferCoreError, match="short read of .* at offset"):
        checksums.checksum_reader(reader, "md5", block_size=4096, parallel=2)


def test_checksum_reader_sequential_reads_in_order():
    reader = BytesReader(DATA)
    checksums.checksum_reader(reader, "crc32c", block_size=1000, parallel=1)
    offsets = [o for o, _ in reader.reads]
    assert offsets == sorted(offsets) and offsets[0] == 0


def test_checksum_reader_stops_on_request():
    stop = threading.Event()
    stop.set()
    with pytest.raises(TransferAborted):
        checksums.checksum_reader(BytesReader(DATA), "md5", block_size=1000, stop=stop)


def test_progress_callback_counts_every_byte():
    seen = []
    checksums.checksum_reader(BytesReader(DATA), "md5", block_size=999, parallel=3, on_progress=seen.append)
    assert sum(seen) == len(DATA)
