import pytest

from transfercore.errors import OptionError
from transfercore.options import (
    bool_option,
    choice_option,
    float_option,
    int_option,
    size_option,
    validate_options,
)

SPECS = {
    "block": size_option("block size", default=4096, minimum=1),
    "streams": int_option("streams", default=1, minimum=1),
    "sync": bool_option("sync"),
    "model": choice_option("model", ("ranges", "prefix"), default="ranges"),
    "slow": float_option("delay"),
}


def test_defaults_fill_in_and_values_are_parsed():
    got = validate_options("x", SPECS, {"block": "1MiB", "sync": "yes", "slow": "0.5"})
    assert got == {"block": 1 << 20, "streams": 1, "sync": True, "model": "ranges", "slow": 0.5}


def test_unknown_options_are_rejected_by_name_listing_the_known_ones():
    with pytest.raises(OptionError, match=r"no option 'colour'.*block, model, slow, streams, sync"):
        validate_options("x", SPECS, {"colour": "red"})


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("block", "lots", "not a size"),
        ("block", "0", "smaller than the minimum"),
        ("streams", "two", "not a whole number"),
        ("streams", "0", "below the minimum"),
        ("sync", "maybe", "not a boolean"),
        ("model", "tape", "not one of ranges, prefix"),
        ("slow", "nan", "below the minimum"),
    ],
)
def test_bad_values_name_the_option_and_the_problem(name, value, message):
    with pytest.raises(OptionError, match=message) as info:
        validate_options("x", SPECS, {name: value})
    assert f"{name}={value!r}" in str(info.value)
