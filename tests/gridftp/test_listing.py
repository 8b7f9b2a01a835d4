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


def test_names_with_line_breaks_are_never_shown():
    evil = ObjectInfo("/d/x\r\n226 done", 1, T)
    assert mlst_line(evil, evil.path, writable=False) is None
    assert mlsd_text([evil], writable=False) == b""
    assert list_text([evil]) == b"" and nlst_text([evil]) == b""
