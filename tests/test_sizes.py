import pytest

from transfercore.errors import SizeSyntaxError
from transfercore.sizes import format_size, parse_size


@pytest.mark.parametrize(
    ("text", "value"),
    [("4096", 4096), ("64M", 64 << 20), ("1GiB", 1 << 30), ("256MB", 256 << 20), ("1.5k", 1536), ("2 t", 2 << 40), (7, 7)],
)
def test_human_sizes(text, value):
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["", "M", "-1", "1X", "1.2.3", "ten", "9" * 30])
def test_bad_sizes_quote_the_text(text):
    with pytest.raises(SizeSyntaxError) as info:
        parse_size(text, what="--block-size")
    assert "--block-size" in str(info.value)


def test_minimum_is_enforced():
    with pytest.raises(SizeSyntaxError, match="smaller than the minimum"):
        parse_size("0", minimum=1)


def test_format_size():
    assert format_size(512) == "512 B"
    assert format_size(1536) == "1.5 KiB"
    assert format_size(3 << 30) == "3.0 GiB"
