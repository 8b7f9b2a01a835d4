"""One partial-name rule: serve's uploads, the posix and the HPSS drivers hide unfinished objects alike."""

from __future__ import annotations

import os

import pytest

from transfercore.gridftp.upload import partial_name
from transfercore.partialnames import is_partial_name, partial_path, stem

NAME_MAX = 255


@pytest.mark.parametrize("name", ["a", "x" * 200, "y" * 201, "é" * 127, "z" * NAME_MAX])
def test_a_hidden_name_fits_name_max_whatever_the_name(name):
    hidden = os.path.basename(partial_name(f"/d/{name}"))
    assert len(hidden.encode()) <= NAME_MAX
    assert is_partial_name(hidden)
    assert partial_path(f"/d/{name}") == f"/d/{hidden}"


def test_long_names_differ_by_digest_and_short_ones_stay_readable():
    assert partial_name("/d/report.txt") == "/d/.report.txt.tcpart"
    assert stem("a" * 300) != stem("a" * 299 + "b")
    assert stem("a" * 300).startswith("tc-")


def test_the_drivers_use_the_same_rule():
    from transfercore_hpss.names import partial_path as hpss_partial
    from transfercore_posix import names as posix_names

    long = "n" * 250
    assert hpss_partial(f"/d/{long}") == partial_name(f"/d/{long}")
    assert posix_names.stem(long) == stem(long)
    assert posix_names.partial_name(long, "0" * 16).startswith(f".{stem(long)}.")


def test_only_dot_names_with_the_suffix_are_partial():
    assert not is_partial_name("report.tcpart")
    assert not is_partial_name(".tcpart")
    assert is_partial_name(".r.tcpart")
