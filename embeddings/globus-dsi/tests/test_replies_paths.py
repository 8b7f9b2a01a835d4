from __future__ import annotations

import posixpath

import pytest
from transfercore_globus_dsi.paths import driver_path
from transfercore_globus_dsi.replies import error_reply

from transfercore import errors as E


@pytest.mark.parametrize(
    "exc, code, error_code",
    [
        (E.RestartRejected("cannot resume x"), 553, "APPEND_NOT_SUPPORTED"),
        (E.NotFound("no such file"), 550, "PATH_NOT_FOUND"),
        (E.PathEscapesRoot("escapes"), 550, "PATH_NOT_ALLOWED"),
        (E.NoSpace("full"), 452, "NO_SPACE_LEFT"),
        (E.UnknownChecksum("crc99"), 504, "UNSUPPORTED_CHECKSUM"),
        (E.StorageError("EIO"), 451, "IO_FAILED"),
        (RuntimeError("boom"), 451, "DSI_INTERNAL"),
    ],
)
def test_error_codes(exc, code, error_code):
    reply = error_reply(exc)
    assert (reply.code, reply.error_code) == (code, error_code)


def test_not_found_is_the_tables_answer():
    # answered without importing the GridFTP front end's table: it must say the same
    from transfercore_globus_dsi.replies import NOT_FOUND, one_line

    from transfercore.gridftp.replies import FAILURES
    from transfercore.gridftp.replies import one_line as table_one_line
    from transfercore.outcomes import Outcome

    assert NOT_FOUND == (FAILURES[Outcome.NOT_FOUND].code, FAILURES[Outcome.NOT_FOUND].error_code)
    for text in ("a\r\n226 forged", "  x  y ", ""):
        assert one_line(text) == table_one_line(text)


def test_reply_text_is_one_line_with_the_hint():
    reply = error_reply(E.RestartRejected("cannot resume /a\r\n226 forged"))
    assert "\n" not in reply.text and "\r" not in reply.text
    assert "start again from zero" in reply.text


@pytest.mark.parametrize(
    "base, client, expected",
    [("/data", "/", "/data"), ("/data", "/a/b", "/data/a/b"), ("/data/", "//a/./b/", "/data/a/b"),
     ("/", "/x", "/x"), ("/data", "/a/../b", "/data/b")],
)
def test_driver_paths(base, client, expected):
    assert driver_path(base, client) == expected


@pytest.mark.parametrize("client", ["/..", "/a/../../etc", "/a\x00b"])
def test_paths_never_leave_the_base(client):
    with pytest.raises(E.PathEscapesRoot):
        driver_path("/data", client)


def _by_parts(base: str, client: str) -> str:
    """The path resolved part by part, as for any path that is not already normal."""
    parts: list[str] = []
    for part in client.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            parts.pop()
            continue
        parts.append(part)
    root = posixpath.normpath(base or "/")
    return posixpath.join(root, *parts) if parts else root


@pytest.mark.parametrize("base", ["/data", "/data/", "/", "", "//data", "/a/./b/"])
@pytest.mark.parametrize(
    "client",
    ["/x", "/a/b/c", "/d0/f00001", "/.hidden", "/a/.b", "/a/b.", "/a/...", "/a/b/", "/", "//a", "/a//b", "/./a",
     "/a/.", "/a/b/../c", "x/y", "/a\\b", "/ä/ö"],
)
def test_a_normal_path_taken_as_it_is_resolves_as_part_by_part(base, client):
    """Paths already normal (every path of a tree's uploads) skip the part-by-part walk: same answer."""
    assert driver_path(base, client) == _by_parts(base, client)
