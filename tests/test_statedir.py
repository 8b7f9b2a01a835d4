from pathlib import Path

from transfercore import statedir


def test_xdg_state_home_is_used():
    assert statedir.default_journal_path({"XDG_STATE_HOME": "/s", "HOME": "/h"}) == Path("/s/transfercore/journal.sqlite")


def test_relative_xdg_value_is_ignored_as_the_spec_says():
    assert statedir.state_dir({"XDG_STATE_HOME": "rel", "HOME": "/h"}) == Path("/h/.local/state/transfercore")


def test_default_is_under_home():
    assert statedir.state_dir({"HOME": "/h"}) == Path("/h/.local/state/transfercore")
