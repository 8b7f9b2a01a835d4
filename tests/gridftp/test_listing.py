from transfercore.contract import ObjectInfo
from transfercore.gridftp.listing import facts, ftp_time, list_text, mlsd_text, mlst_line, nlst_text

T = 1_700_000_000 * 10**9  # 2023-11-14 22:13:20 UTC


def test_ftp_time_is_utc():
    assert ftp_time(T) == "20231114221320"


def test_facts_and_lines():
    f = ObjectInfo("/d/a.bin", 5, T, mode=0o640)
    d = ObjectInfo("/d/sub", 0, T, is_dir=True, mode=0o755)
    assert facts(f, writable=False) == "Type=file;Modify=20231114221320;Size=5;Perm=r;UNIX.mode=0640;"
    assert facts(d, writable=True).startswith("Type=dir;")
    assert mlst_line(f, "/d/a.bin", writable=False).endswith(" /d/a.bin")
    text = mlsd_text([f, d], writable=False).decode()
    assert text.splitlines()[0].endswith(" a.bin") and text.endswith("\r\n")
    assert "drwxr-xr-x" in list_text([d]).decode()
    assert nlst_text([f, d]) == b"a.bin\r\nsub\r\n"


def test_a_name_that_would_forge_a_line_is_refused_not_left_out():
    import pytest

    from transfercore.gridftp.errors import ReplyError
    from transfercore.gridftp.listing import mlsr_text

    evil = ObjectInfo("/d/x\r\n226 done", 1, T)
    fine = ObjectInfo("/d/ok", 1, T)
    # on the control connection a line break in a name is never shown
    assert mlst_line(evil, evil.path, writable=False) is None
    # a listing with it would have ended without it: refused with 550 before any data
    for render in (lambda e: mlsd_text(e, writable=False), list_text, nlst_text,
                   lambda e: mlsr_text(fine, [(i.name, i) for i in e], writable=False)):
        with pytest.raises(ReplyError) as refused:
            render([fine, evil])
        assert refused.value.code == 550 and "CR LF" in str(refused.value)
        assert "\r\n" not in str(refused.value)


def test_a_lone_line_feed_or_carriage_return_in_a_name_is_listed_as_globus_lists_it():
    lf, cr = ObjectInfo("/d/a\nb", 1, T), ObjectInfo("/d/c\r", 1, T)
    assert nlst_text([lf, cr]) == b"a\nb\r\nc\r\r\n"
    lines = mlsd_text([lf, cr], writable=False).split(b"\r\n")
    assert lines[0].endswith(b"; a\nb") and lines[1].endswith(b"; c\r") and lines[2] == b""
    assert list_text([lf]).endswith(b" a\nb\r\n")
