import pytest

from transfercore.capabilities import Capabilities, RestartModel
from transfercore.errors import CapabilityError


def test_capabilities_are_frozen_values_with_a_json_view():
    caps = Capabilities(restart=RestartModel.PREFIX, ordered_writes=True, checksums={"md5"})
    assert caps.to_dict()["restart"] == "prefix"
    assert caps.to_dict()["checksums"] == ["md5"]
    with pytest.raises(AttributeError):
        caps.max_writers = 4  # type: ignore[misc]


def test_inconsistent_declarations_are_refused():
    with pytest.raises(CapabilityError, match="max_writers"):
        Capabilities(ordered_writes=True, max_writers=4)
    with pytest.raises(CapabilityError, match="at least 1"):
        Capabilities(max_writers=0)
    with pytest.raises(CapabilityError, match="min_block_size"):
        Capabilities(min_block_size=10, preferred_block_size=5)
