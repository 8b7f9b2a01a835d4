from transfercore_posix import names

from transfercore.driverkit import new_token


def test_partial_pattern_matches_only_partials_of_that_name():
    token = new_token()
    pattern = names.partial_pattern("a")
    assert pattern.fullmatch(names.partial_name("a", token))
    assert not pattern.fullmatch(names.partial_name("a.b", token))
    assert not pattern.fullmatch(names.partial_name("b", token))
    assert not pattern.fullmatch(names.sidecar_name("a"))
    assert not pattern.fullmatch(".a.nothex0000000000.tcpart")


def test_tokens_are_random_hex_of_fixed_length():
    tokens = {new_token() for _ in range(50)}
    assert len(tokens) == 50
    assert all(len(t) == names.TOKEN_HEX and int(t, 16) >= 0 for t in tokens)


def test_long_names_are_hashed_to_stay_below_name_max():
    long = "x" * 250
    hidden = names.partial_name(long, new_token())
    assert len(hidden.encode()) < 255
    assert len(names.sidecar_temp_name(long).encode()) < 255
    assert names.partial_pattern(long).fullmatch(hidden)
    assert names.partial_name("y" * 250, "0" * 16) != names.partial_name(long, "0" * 16)


def test_hidden_entries_are_recognised_and_ordinary_names_are_not():
    assert names.is_hidden(names.partial_name("f", new_token()))
    assert names.is_hidden(names.sidecar_name("f"))
    assert names.is_hidden(names.sidecar_temp_name("f"))
    for visible in ("f", ".bashrc", "data.tcpart", ".hidden.txt"):
        assert not names.is_hidden(visible)
