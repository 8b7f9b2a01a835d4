import attrs
import pytest

from transfercore.engine import MarkerPolicy, TransferOptions
from transfercore.errors import OptionError, UnknownChecksum


def test_defaults():
    options = TransferOptions()
    assert options.streams == 4 and options.block_size is None
    assert options.checksum == "crc32c" and options.resume
    assert options.marker_policy == MarkerPolicy()


def test_checksum_names_are_canonical_and_none_turns_it_off():
    assert TransferOptions(checksum="SHA-256").checksum == "sha256"
    assert TransferOptions(checksum="none").checksum is None
    assert TransferOptions(checksum=None).checksum is None
    with pytest.raises(UnknownChecksum):
        TransferOptions(checksum="crc64")


@pytest.mark.parametrize("kwargs", [{"streams": 0}, {"streams": 1000}, {"streams": "4"}, {"block_size": 0},
                                    {"block_size": 2 << 30}, {"progress_interval": 0}])
def test_bad_values(kwargs):
    with pytest.raises(OptionError):
        TransferOptions(**kwargs)


def test_evolve_and_to_dict():
    options = attrs.evolve(TransferOptions(), streams=8, block_size=1 << 20)
    d = options.to_dict()
    assert d["streams"] == 8 and d["block_size"] == 1 << 20 and d["marker_interval"] == 5.0
